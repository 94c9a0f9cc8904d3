"""Studies end to end through the real command line: a grid study, SIGKILL + resume of an
adaptive study (no trial lost, none retrained from scratch, Optuna consistent), Ctrl-C,
SIGTERM and SIGHUP. Elsewhere: a grid study's SIGKILL + resume on object storage
(test_s3.py), with a truncated checkpoint (test_faults.py), PBT's (test_pbt.py), a real
two-node cluster (test_cluster.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from search_spaces.adaptive import storage_url, study_name
from tests.study.helpers import (
    TINY,
    assert_each_trial_trained_once,
    assert_no_trial_errored,
    checkpointed_unfinished,
    checkpoints,
    cli,
    descendants,
    finish,
    finished,
    kill_when,
    one_finished_one_checkpointed,
    result_lines,
    still_running,
    tensorboard_scalars,
    trial_dirs,
    wait_for,
)
from trainables.config import PARAM_OF

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study



NEW_FAMILIES = {"beta_tcvae": 4, "dip_vae_i": 2, "dip_vae_ii": 2, "annealed_vae": 5,
                "factor_vae": 10}  # one value each, beside the quick grid's two families


def test_grid_study_end_to_end_with_status_and_report(dsprites_path, tmp_path, ray_head):
    families = ["beta_vae", "wae_uniform", *NEW_FAMILIES]
    code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "g",
                                "--set", "train.steps=40", "--set", "train.report_every=20",
                                "--set", "train.checkpoint_every=20",
                                "--set", f"study.families={families}",
                                *(arg for family, value in NEW_FAMILIES.items()
                                  for arg in ("--set", f"grid.{family}=[{value}]")),
                                "--set", "train.discriminator_width=16",
                                "--cpus-per-trial", "0.5",  # two trials at a time on the head
                                "--tracking", "mlflow", *TINY, joining=ray_head))
    assert code == 0, err
    experiment = tmp_path / "g"
    assert_tracked_in_mlflow(experiment, 4 + len(NEW_FAMILIES))
    assert out.strip().splitlines()[-1] == str(experiment / "report" / "index.html")
    answer = json.loads((experiment / "report" / "summary.json").read_text())["answer_lines"]
    assert out.strip().splitlines()[-3:-1] == list(answer.values())  # one line per task
    assert "started beta_vae β=1: evaluating the untrained models (step 0)" in out
    assert "estimated wall time" in out and "trials at a time)" in out
    results = pd.read_csv(experiment / "report" / "results.csv")
    assert len(results) == (4 + len(NEW_FAMILIES)) * 2 * 3  # trials × replicates × calculations
    assert set(results["family"]) == set(families)
    params = results.groupby("family")["param"].unique().map(list).to_dict()
    assert params == {family: [PARAM_OF[family]] for family in families}
    assert (results["step"] == 40).all()
    assert {line["node_id"] for trial in trial_dirs(experiment)
            for line in result_lines(trial)} == {ray_head.node_id}  # it joined the head
    for trial in trial_dirs(experiment):  # a finished trial keeps its final weights only
        kept = [p.name for p in checkpoints(trial)]  # others: emptied, a note naming this one
        assert len(kept) == 1, kept
        final = torch.load(trial / kept[0] / "pack.pt", weights_only=True)["trainer"]
        assert "model" in final and "exp_avg" not in final
        curves = tensorboard_scalars(trial)  # `tensorboard --logdir` shows the scalars
        assert [step for step, _ in curves["train/loss"]] == [20, 40]
        assert [step for step, _ in curves["eval/disentanglement_5var"]] == [0, 40]
        assert {"train/recon", "eval/recon_test", "eval/recon_test_mean"} <= set(curves)
    for name in ("pareto_4var.csv", "pareto_5var.csv", "figure1_4var.png", "figure1_5var.png",
                 "figure2_reconstructions.png", "summary.json", "report.md"):
        assert (experiment / "report" / name).exists(), name
    code, out, err = finish(cli("status", str(experiment)))
    assert code == 0, err
    assert f"{4 + len(NEW_FAMILIES)} finished" in out and "best 5-var so far" in out


def test_sigkilled_adaptive_study_resumes_with_optuna_consistent(dsprites_path, tmp_path, ray_head):
    steps = 150
    args = ["run", "quick-adaptive", "--storage", str(tmp_path), "--name", "a",
            "--max-concurrent", "1", "--set", "adaptive.trials=3",
            "--set", f"train.steps={steps}", "--set", "train.report_every=25",
            "--set", "train.checkpoint_every=50", *TINY]
    experiment = tmp_path / "a"
    proc = cli(*args)
    kill_when(proc, experiment, one_finished_one_checkpointed(steps))
    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    finished_trials = [d for d in trial_dirs(experiment) if finished(d, steps)]
    assert len(finished_trials) == 3
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, steps)
    study = optuna.load_study(study_name=study_name(experiment), storage=storage_url(experiment))
    assert study.study_name == "wae-study-a"
    assert study.metric_names == ["validation_disentanglement_5var", "validation_recon"]
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(finished_trials)
    assert optuna.trial.TrialState.RUNNING not in states
    seeds = [s for d in finished_trials for s in result_lines(d)[-1]["seeds"]]
    assert len(set(seeds)) == 3 * 2  # no adaptive trial reuses another's seeds
    progress = pd.read_csv(experiment / "report" / "search_progress.csv")
    assert list(progress["x"]) == [1, 2, 3]  # one row per finished trial (its order: unit test)
    assert progress["hypervolume"].is_monotonic_increasing


def start_checkpointed(experiment: Path, steps: int, prefix: tuple[str, ...] = ()):
    """A one-family quick study of `steps` steps, one trial at a time, started in the
    background and returned once a trial has checkpointed before its last step."""
    proc = cli("run", "quick", "--storage", str(experiment.parent), "--name", experiment.name,
               "--max-concurrent", "1", "--set", f"train.steps={steps}", "--set",
               "train.report_every=25", "--set", "train.checkpoint_every=50", "--set",
               "study.families=['beta_vae']", *TINY, prefix=prefix)
    wait_for(proc, lambda: experiment.exists() and any(checkpointed_unfinished(d, steps)
                                                       for d in trial_dirs(experiment)))
    return proc, experiment


def test_ctrl_c_exits_130_and_a_busy_folder_is_refused(dsprites_path, tmp_path):
    # far more steps than the checks below take: the study is still running
    proc, experiment = start_checkpointed(tmp_path / "i", 20_000)
    code, out, err = finish(cli("resume", str(experiment)), timeout=60)
    assert code == 2 and "in use" in err, err
    code, out, err = finish(cli("status", str(experiment)), timeout=60)
    assert code == 0 and "running" in out, out + err
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=120)
    assert code == 130, err
    assert f"wae-study resume {experiment}" in err
    # only the project's lines: not Tune's own resume hint nor its warnings about trials
    assert "Tuner.restore" not in err and "FileNotFoundError" not in err, err


@pytest.mark.parametrize(("stop", "code", "prefix"), [
    (signal.SIGTERM, 143, ()),
    (signal.SIGHUP, 129, ()),
    (signal.SIGTERM, 143, ("timeout", "3600")),  # `timeout` signals its whole process group
], ids=["sigterm", "sighup", "sigterm-to-the-group"])
def test_sigterm_and_sighup_stop_as_ctrl_c_does_and_the_study_resumes(dsprites_path, tmp_path,
                                                                      ray_head, stop, code,
                                                                      prefix):
    """A scheduler's SIGTERM (a closed terminal's SIGHUP), to the driver or, as `timeout`
    sends it, to the driver's process group: the state saved, the resume line, exit 128 + the
    signal, no C++ dump, every process of the study's own Ray ended; resume then trains every
    trial once."""
    steps = 300
    proc, experiment = start_checkpointed(tmp_path / "t", steps, prefix=prefix)
    ray_processes = descendants(proc.pid)
    assert any("raylet" in command for _, _, command in ray_processes), ray_processes
    proc.send_signal(stop)
    returncode, out, err = finish(proc, timeout=120)
    assert returncode == code, err
    assert f"continue with `wae-study resume {experiment}`" in err
    assert "Aborted" not in err and "received at time" not in err and "Traceback" not in err, err
    assert still_running(ray_processes) == []
    returncode, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert returncode == 0, err
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, steps)


def assert_tracked_in_mlflow(experiment, n_trials: int) -> None:
    """One MLflow run per trial in the experiment's `mlflow.db` (the default URI), named after
    it, its settings as params, the training curve and each evaluation against the step; the
    last 5-var value the trial's own final evaluation."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(experiment / 'mlflow.db').resolve()}")
    found = client.get_experiment_by_name(experiment.name)
    runs = client.search_runs([found.experiment_id])
    trials = trial_dirs(experiment)
    assert len(runs) == len(trials) == n_trials
    by_id = {json.loads((d / "params.json").read_text())["trial_id"]: d for d in trials}
    for run in runs:
        trial = next(d for t, d in by_id.items() if t in run.info.run_name)
        final = result_lines(trial)[-1]
        assert run.data.params["trial/family"] == final["family"]
        assert float(run.data.params["trial/value"]) == final["value"]
        assert run.data.metrics["disentanglement_5var"] == pytest.approx(
            final["disentanglement_5var"])
        loss = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in loss] == [20, 40]
        evaluated = client.get_metric_history(run.info.run_id, "disentanglement_5var")
        assert [m.step for m in evaluated] == [0, 40]  # evaluations only
