"""The GPU check's dry run: every check runs on the CPU at tiny sizes, with Ray and Optuna
made unimportable (the GPU machine has neither), and every correctness check passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.config import FAMILIES

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
# Run the script with Ray and Optuna blocked: importing either raises ImportError.
BLOCKED = ("import runpy, sys; sys.modules['ray'] = None; sys.modules['optuna'] = None; "
           f"sys.argv = [{str(SCRIPT)!r}, '--dry-run']; "
           f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")


@pytest.mark.slow
def test_dry_run_runs_every_check_without_ray_or_optuna():
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    checks = {line["check"] for line in lines}
    assert {"correctness", "throughput", "metrics", "shared", "paper_slice", "conv",
            "imports"} <= checks
    correctness = [line for line in lines if line["check"] == "correctness"]
    # member = solo for every family, then the two checks of the whole pack
    assert len(correctness) == len(FAMILIES) + 2 and all(line["ok"] for line in correctness), \
        correctness
    for check in ("throughput", "conv"):  # the naive loop, then the pack at each K
        timed = [(line["impl"], line["K"]) for line in lines if line["check"] == check
                 and "impl" in line and line["model_steps_per_s"] > 0]
        assert timed == [("naive", 1), ("pack", 1), ("pack", 2)], check
    conv = [line for line in lines if line.get("test") == "member_equals_solo"
            and line["check"] == "conv"]
    assert [line["family"] for line in conv] == list(FAMILIES) and all(
        line["ok"] for line in conv), conv
    shared = next(line for line in lines if line["check"] == "shared")
    assert shared["processes"] == len(shared["per_process"]) == 2
    assert shared["total_model_steps_per_s"] == pytest.approx(sum(shared["per_process"]),
                                                              abs=0.02)
    metrics = next(line for line in lines if line["check"] == "metrics")
    assert {"disentanglement_4var", "disentanglement_5var", "recon_test"} <= set(
        metrics["scores"])
    for name, score in metrics["scores"].items():  # what an evaluation of that model gives
        assert 0 <= score <= 1 if name.startswith("disentanglement") else score > 0, name
    slices = [line for line in lines if line["check"] == "paper_slice" and "family" in line]
    assert [line["family"] for line in slices] == list(FAMILIES)
    for line in slices:
        assert line["model_steps_per_s"] == pytest.approx(
            line["K"] * line["steps"] / line["train_s"], rel=0.5)  # train_s is rounded
        assert line["recon_test"] > 0
    assert any("projected_figure1_hours" in line for line in lines)
    imports = next(line for line in lines if line["check"] == "imports")
    assert imports["ray"] is False and imports["optuna"] is False
