"""`wae-study presets`, `--help` and `status` start without torch or Ray (seconds of start-up
a user pays at every call): each runs in a fresh interpreter and its imports are checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from study import spec

HEAVY = ("torch", "ray", "optuna", "sklearn", "tensorboardX", "matplotlib")
RUN = ("import json, sys; from study.cli import main\n"
       "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
       "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))")


def heavy_imports(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", RUN.format(heavy=HEAVY), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def experiment(tmp_path):
    """A study folder as a running grid study leaves it: one trial with two reports."""
    exp = tmp_path / "exp"
    (exp / "t0").mkdir(parents=True)
    (exp / "study.toml").write_text(spec.dumps(spec.load("quick")))
    config = {"trial": {**spec.expand(spec.load("quick"))[0]}}
    (exp / "t0" / "params.json").write_text(json.dumps(config))
    lines = [{"trial_id": "abcde_00000", "step": s, "time_total_s": s / 10.0,
              "family": "beta_vae", "value": 1.0} for s in (0, 100)]
    (exp / "t0" / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return exp


@pytest.mark.parametrize("args", [["presets"], ["--help"], ["run", "--help"]])
def test_listing_commands_import_neither_torch_nor_ray(args):
    assert heavy_imports(*args) == []


def test_status_imports_neither_torch_nor_ray(experiment, capsys):
    assert heavy_imports("status", str(experiment)) == []
