"""Fault injection end to end, each a tiny study on the CPU through the real command line:
a trial's worker SIGKILLed (retried from its checkpoint), a node removed from a Ray cluster
(its trial finishes on the other node), the driver SIGKILLed mid-training with the latest
checkpoint then truncated (resume falls back to the previous one, results bitwise equal to an
uninterrupted run) and the driver SIGKILLed while writing the report (resume completes it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.study.helpers import (
    TINY,
    assert_each_trial_trained_once,
    assert_no_report_lost,
    assert_no_trial_errored,
    checkpoint_taken_in,
    checkpointed_unfinished,
    checkpoints,
    cli,
    finish,
    finished,
    kill_when,
    result_lines,
    trial_dirs,
    wait_for,
)
from trainables import checkpoint

STEPS = 300
SCORES = ["disentanglement_4var", "disentanglement_5var", "recon_test", "recon_train"]
REPORT_FILES = ("index.html", "results.csv", "pareto_4var.csv", "pareto_5var.csv",
                "figure1_4var.png", "figure1_5var.png", "figure2_reconstructions.png",
                "summary.json", "report.md")

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study



def study_args(storage: Path, name: str, values: str, *extra: str) -> list[str]:
    """A beta-VAE grid over `values`, STEPS steps checkpointed every 50, at TINY size."""
    return ["run", "quick", "--storage", str(storage), "--name", name,
            "--set", f"train.steps={STEPS}", "--set", "train.report_every=25",
            "--set", "train.checkpoint_every=50", "--set", "study.families=['beta_vae']",
            "--set", f"grid.beta_vae={values}", *extra, *TINY]


def test_killed_trial_worker_retries_from_its_checkpoint(dsprites_path, tmp_path):
    experiment = tmp_path / "w"
    proc = cli(*study_args(tmp_path, "w", "[4]", "--max-failures", "2"))

    def running_with_checkpoint():
        for trial in trial_dirs(experiment) if experiment.exists() else []:
            lines = result_lines(trial)
            if lines and checkpointed_unfinished(trial, STEPS) and checkpoint_taken_in(trial):
                return lines[-1]["pid"]
        return None

    pid = wait_for(proc, running_with_checkpoint)
    os.kill(pid, signal.SIGKILL)
    code, out, err = finish(proc)
    assert code == 0, err
    (trial,) = trial_dirs(experiment)
    lines = result_lines(trial)
    assert {r["pid"] for r in lines} - {pid}, "the trial never ran in a new worker"
    retried = next(r for r in lines if r["pid"] != pid)
    assert retried["step"] > 0, "the retry started from scratch"
    assert_each_trial_trained_once(experiment, STEPS)
    assert_no_report_lost(experiment, STEPS, 25)


def test_removed_node_trial_finishes_on_the_other_node(dsprites_path, tmp_path):
    from ray.cluster_utils import Cluster

    store = {"object_store_memory": 800 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **store})
    try:
        workers = [cluster.add_node(num_cpus=1, **store) for _ in range(2)]
        cluster.wait_for_nodes()
        # Without --address a study starts its own Ray, never joins this machine's cluster.
        own = subprocess.run([sys.executable, "-c", "import ray; from study.runner import "
                              "start_ray; start_ray(None, \"grid\"); "
                              "print(ray.get_runtime_context().gcs_address)"],
                             capture_output=True, text=True, timeout=120)
        assert own.returncode == 0, own.stderr
        assert own.stdout.split()[-1] != cluster.address
        experiment = tmp_path / "n"
        proc = cli(*study_args(tmp_path, "n", "[1, 8]", "--address", cluster.address,
                               "--max-failures", "2"))
        by_id = {node.node_id: node for node in workers}

        def node_of_checkpointed_trial():
            for trial in trial_dirs(experiment) if experiment.exists() else []:
                lines = result_lines(trial)
                if lines and checkpointed_unfinished(trial, STEPS) and checkpoint_taken_in(trial):
                    return trial, lines[-1]["node_id"]
            return None

        victim_trial, victim_id = wait_for(proc, node_of_checkpointed_trial)
        cluster.remove_node(by_id[victim_id])
        code, out, err = finish(proc)
        assert code == 0, err
        assert len(trial_dirs(experiment)) == 2
        assert_each_trial_trained_once(experiment, STEPS)
        (survivor,) = set(by_id) - {victim_id}
        assert result_lines(victim_trial)[-1]["node_id"] == survivor
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def killed_in_report(dsprites_path, tmp_path_factory, ray_head) -> tuple[Path, int, str]:
    """A one-trial study (β=1) SIGKILLed while writing its report, then resumed: (folder, rc,
    err). Its training ran uninterrupted: the reference for the determinism check."""
    storage = tmp_path_factory.mktemp("report-kill")
    experiment = storage / "r"
    proc = cli(*study_args(storage, "r", "[1]"))
    kill_when(proc, experiment, lambda dirs: any(experiment.glob(".report.tmp-*")))
    assert not (experiment / "report").exists()
    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    return experiment, code, err


def test_driver_killed_during_report_resumes_to_a_complete_report(killed_in_report):
    experiment, code, err = killed_in_report
    assert code == 0, err
    assert len(trial_dirs(experiment)) == 1
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, STEPS)
    for name in REPORT_FILES:
        assert (experiment / "report" / name).exists(), name
    results = pd.read_csv(experiment / "report" / "results.csv")
    assert len(results) == 1 * 2 * 3  # trials × replicates × calculations
    assert not results.duplicated(["trial_id", "replicate", "calculation"]).any()
    assert (results["step"] == STEPS).all()
    assert not list(experiment.glob(".report.*")), "the killed writer's temp folder remains"


def test_driver_killed_mid_training_with_truncated_checkpoint_resumes_bitwise(
        killed_in_report, tmp_path, ray_head):
    """Two trials one at a time, killed before any finished (the second not started); the
    first's newest checkpoint (the one Tune recorded as its latest) is then truncated: resume
    falls back to the previous checkpoint, trains every trial once, and the interrupted
    trial's results equal the uninterrupted study's."""
    experiment = tmp_path / "m"
    proc = cli(*study_args(tmp_path, "m", "[1, 8]", "--max-concurrent", "1"))

    def newest_recorded_checkpoint(dirs: list[Path]) -> bool:
        if any(finished(d, STEPS) for d in dirs):
            return True  # too late: killed, then failed below
        state = "".join(p.read_text() for p in experiment.glob("experiment_state-*.json"))
        for trial in dirs:
            saved = checkpoints(trial)
            if len(saved) >= 2 and saved[-1].name in state:
                recorded.append(saved[-1])
                return True
        return False

    recorded: list[Path] = []
    kill_when(proc, experiment, newest_recorded_checkpoint)
    assert recorded, "a trial finished before the driver could be killed"
    assert sum(1 for d in trial_dirs(experiment) if result_lines(d)) == 1  # one started
    newest = recorded[-1]
    assert result_lines(newest.parent)[0]["value"] == 1  # the trial the reference ran
    truncated_step = checkpoint.load(newest)["step"]
    pack = newest / "pack.pt"
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])

    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    assert len(trial_dirs(experiment)) == 2
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, STEPS)
    steps = [r["step"] for r in result_lines(newest.parent)]
    resumed_at = next(b for a, b in zip(steps, steps[1:], strict=False) if b <= a)
    assert 0 < resumed_at <= truncated_step, (resumed_at, truncated_step, steps)

    reference = killed_in_report[0]
    keys = ["family", "value", "replicate", "calculation"]
    ours = pd.read_csv(experiment / "report" / "results.csv").set_index(keys).sort_index()
    theirs = pd.read_csv(reference / "report" / "results.csv").set_index(keys).sort_index()
    assert len(ours) == 2 * 2 * 3 and len(theirs) == 1 * 2 * 3
    pd.testing.assert_frame_equal(ours.loc[theirs.index, SCORES], theirs[SCORES],
                                  check_exact=False, atol=1e-6, rtol=0)


def saved_last_step(experiment: Path, trial: Path) -> int:
    """The step of `trial`'s last result in the experiment state Tune saved (Tune's format,
    read here only to check that the test reached its point)."""
    (path,) = experiment.glob("experiment_state-*.json")
    for config, runtime in json.loads(path.read_text())["trial_data"]:
        if trial.name.startswith(json.loads(config)["trial_id"]):
            return json.loads(runtime)["last_result"]["step"]
    raise AssertionError(f"{trial.name} is not in {path.name}")


def test_driver_killed_after_a_trial_finished_and_was_pruned_resumes_without_retraining(
        dsprites_path, tmp_path, ray_head):
    """Tune saves its experiment state every so often, so the state on disk can lag a trial's
    last report: it may still name a checkpoint that the trial's pruning at its end passed
    over. Killed then, the resume must neither fail that trial nor train it again.
    TUNE_GLOBAL_CHECKPOINT_S makes the lag certain: Tune then saves its state only when a
    trial has checkpointed twice since the last save (3 checkpoints: the final one unsaved)."""
    experiment = tmp_path / "p"
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    proc = cli(*study_args(tmp_path, "p", "[1, 8]", "--max-concurrent", "1",
                           "--set", "train.checkpoint_every=100"), env=env)

    def finished_and_pruned(dirs: list[Path]) -> bool:
        for trial in dirs:
            kept = checkpoints(trial)  # those holding a pack.pt
            if len(kept) == 1 and checkpoint.load(kept[0])["step"] == STEPS:
                return True  # the final checkpoint, and no other: pruned
        return False

    kill_when(proc, experiment, finished_and_pruned)
    (done,) = [d for d in trial_dirs(experiment) if checkpoints(d)
               and checkpoint.load(checkpoints(d)[0])["step"] == STEPS]
    assert saved_last_step(experiment, done) < STEPS, "Tune's saved state did not lag"
    before = len(result_lines(done))
    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, STEPS)
    after = result_lines(done)
    assert [r["step"] for r in after[before:]] == [STEPS], "the finished trial trained again"
