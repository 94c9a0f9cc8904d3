"""Studies end to end through the real command line: a grid study, SIGKILL + resume for grid
and adaptive studies (no trial lost, none retrained from scratch, Optuna consistent), and a
two-node Ray cluster with fractional logical GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest

from analysis import provenance
from search_spaces.adaptive import STUDY_NAME, storage_url
from study import spec

TINY = ["--set", "train.encoder_width=32", "--set", "train.decoder_width=32",
        "--set", "train.latent_dim=4", "--set", "train.batch_size=16",
        "--set", "train.recon_eval_images=100", "--set", "train.higgins_votes=100",
        "--set", "train.higgins_classifier_steps=100", "--set", "study.replicates=2"]


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "study.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def result_lines(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return lines


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "params.json").exists())


def finished(trial_dir: Path, steps: int) -> bool:
    return any("evaluation" in r and r["step"] == steps for r in result_lines(trial_dir))


def checkpoints(trial_dir: Path) -> list[Path]:
    """The trial's checkpoint folders whose pack.pt is written."""
    return sorted(p for p in trial_dir.glob("checkpoint_*") if (p / "pack.pt").is_file())


def checkpointed_unfinished(trial_dir: Path, steps: int) -> bool:
    return bool(checkpoints(trial_dir)) and not finished(trial_dir, steps)


def one_finished_one_checkpointed(steps: int) -> Callable[[list[Path]], bool]:
    """Kill point for the resume tests: one trial done, another checkpointed but unfinished."""
    return lambda dirs: (any(finished(d, steps) for d in dirs)
                         and any(checkpointed_unfinished(d, steps) for d in dirs))


def wait_for(proc: subprocess.Popen, ready: Callable[[], object], timeout: float = 300):
    """Poll `ready()` until it returns something truthy (returned); fail if the study ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"study ended before the awaited point: {proc.communicate()}")
        found = ready()
        if found:
            return found
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the study never reached the awaited point")


def kill_when(proc: subprocess.Popen, experiment: Path, ready, timeout: float = 300) -> None:
    """SIGKILL the driver's whole process group once `ready(trial_dirs)` holds."""
    wait_for(proc, lambda: experiment.exists() and ready(trial_dirs(experiment)), timeout)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_each_trial_trained_once(experiment: Path, steps: int) -> None:
    """Every trial finished, and none restarted from scratch (one step-0 evaluation each)."""
    for trial in trial_dirs(experiment):
        lines = result_lines(trial)
        assert finished(trial, steps), trial.name
        assert sum(1 for r in lines if r["step"] == 0 and "evaluation" in r) == 1, trial.name


def test_grid_study_end_to_end_with_status_and_report(dsprites_path, tmp_path):
    code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "g",
                                "--set", "train.steps=40", "--set", "train.report_every=20",
                                "--set", "study.families=['beta_vae','wae_uniform']", *TINY))
    assert code == 0, err
    experiment = tmp_path / "g"
    assert out.strip().splitlines()[-1] == str(experiment / "report" / "index.html")
    results = pd.read_csv(experiment / "report" / "results.csv")
    assert len(results) == 4 * 2 * 3  # trials × replicates × authors' calculations
    assert set(results["family"]) == {"beta_vae", "wae_uniform"}
    assert (results["step"] == 40).all()
    for name in ("pareto_4var.csv", "pareto_5var.csv", "figure1_4var.png", "figure1_5var.png",
                 "figure2_reconstructions.png", "summary.json", "report.md"):
        assert (experiment / "report" / name).exists(), name
    code, out, err = finish(cli("status", str(experiment)))
    assert code == 0, err
    assert "4 finished" in out and "best 5-var so far" in out


def test_sigkilled_grid_study_resumes_without_losing_or_retraining(dsprites_path, tmp_path):
    steps = 300
    args = ["run", "quick", "--storage", str(tmp_path), "--name", "k", "--max-concurrent", "1",
            "--set", f"train.steps={steps}", "--set", "train.report_every=25",
            "--set", "train.checkpoint_every=50", "--set", "study.families=['beta_vae']",
            "--set", "grid.beta_vae=[1, 4, 8]", *TINY]
    experiment = tmp_path / "k"
    proc = cli(*args)
    kill_when(proc, experiment, one_finished_one_checkpointed(steps))
    code, out, err = finish(cli("status", str(experiment)))
    assert code == 0 and "paused" in out, out + err
    code, out, err = finish(cli("resume", str(experiment)))
    assert code == 0, err
    assert len(trial_dirs(experiment)) == 3
    assert_each_trial_trained_once(experiment, steps)
    results = pd.read_csv(experiment / "report" / "results.csv")
    assert len(results) == 3 * 2 * 3
    assert not results.duplicated(["trial_id", "replicate", "calculation"]).any()
    # the resumed trials kept the seeds the spec gave them: one per model, all distinct
    expected = {(c["value"], r, s) for c in spec.expand(spec.load(str(experiment / "study.toml")))
                for r, s in enumerate(c["seeds"])}
    assert set(zip(results["value"], results["replicate"], results["seed"], strict=True)) \
        == expected and len({s for _, _, s in expected}) == 6
    assert [r["command"] for r in provenance.read_runs(experiment)] == ["run", "resume"]


def test_sigkilled_adaptive_study_resumes_with_optuna_consistent(dsprites_path, tmp_path):
    steps = 150
    args = ["run", "quick-adaptive", "--storage", str(tmp_path), "--name", "a",
            "--max-concurrent", "1", "--set", "adaptive.trials=3",
            "--set", f"train.steps={steps}", "--set", "train.report_every=25",
            "--set", "train.checkpoint_every=50", *TINY]
    experiment = tmp_path / "a"
    proc = cli(*args)
    kill_when(proc, experiment, one_finished_one_checkpointed(steps))
    code, out, err = finish(cli("resume", str(experiment)))
    assert code == 0, err
    finished_trials = [d for d in trial_dirs(experiment) if finished(d, steps)]
    assert len(finished_trials) == 3
    assert_each_trial_trained_once(experiment, steps)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(experiment))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(finished_trials)
    assert optuna.trial.TrialState.RUNNING not in states
    seeds = [s for d in finished_trials for s in result_lines(d)[-1]["seeds"]]
    assert len(set(seeds)) == 3 * 2  # no adaptive trial reuses another's seeds


def test_two_node_cluster_with_half_gpu_trials(dsprites_path, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1})
    try:
        cluster.add_node(num_cpus=2, num_gpus=1)
        cluster.wait_for_nodes()
        code, out, err = finish(cli(
            "run", "quick", "--storage", str(tmp_path), "--name", "c",
            "--address", cluster.address, "--gpus-per-trial", "0.5", "--cpus-per-trial", "1",
            "--set", "train.steps=20", "--set", "train.report_every=10",
            "--set", "study.families=['beta_vae','wae_gaussian']", *TINY))
        assert code == 0, err
        nodes = {r["node_id"] for d in trial_dirs(tmp_path / "c") for r in result_lines(d)}
        assert len(nodes) == 2, nodes
        code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "c2",
                                    "--address", cluster.address, "--gpus-per-trial", "2"))
        assert code == 2 and "exceeds the most GPUs" in err
        assert not (tmp_path / "c2").exists()
    finally:
        cluster.shutdown()


def test_ctrl_c_exits_130_and_a_busy_folder_is_refused(dsprites_path, tmp_path):
    steps = 20_000  # far more than the checks below take: the study is still running
    experiment = tmp_path / "i"
    proc = cli("run", "quick", "--storage", str(tmp_path), "--name", "i", "--max-concurrent",
               "1", "--set", f"train.steps={steps}", "--set", "train.report_every=25",
               "--set", "train.checkpoint_every=50", "--set", "study.families=['beta_vae']",
               *TINY)
    wait_for(proc, lambda: experiment.exists() and any(checkpointed_unfinished(d, steps)
                                                       for d in trial_dirs(experiment)))
    code, out, err = finish(cli("resume", str(experiment)), timeout=60)
    assert code == 2 and "in use" in err, err
    code, out, err = finish(cli("status", str(experiment)), timeout=60)
    assert code == 0 and "running" in out, out + err
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=120)
    assert code == 130, err
    assert f"wae-study resume {experiment}" in err
