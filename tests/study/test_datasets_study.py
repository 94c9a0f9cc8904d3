"""Studies on other datasets end to end through the real command line: their Higgins tasks
are the ones the columns, the progress lines, the report, its files and `status` name;
scream_dsprites' painting reaches the trials and the provenance. The dsprites_noshape study is
tracked by W&B (offline) and also serves the test of a real study's W&B runs: one study of
each kind, not two."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from tests.study.helpers import (
    TINY,
    cli,
    finish,
    result_lines,
    tensorboard_scalars,
    trial_dirs,
    wandb_run,
)

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study


@pytest.fixture(scope="module")
def noshape_study(dsprites_path, tmp_path_factory, ray_head):
    """A quick study on dsprites_noshape (β-VAE and WAE, one value each) tracked by W&B in its
    offline mode, on the shared Ray head: (experiment folder, exit code, stdout, stderr)."""
    storage = tmp_path_factory.mktemp("noshape")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    code, out, err = finish(cli("run", "quick", "--storage", str(storage), "--name", "n",
                                "--set", "train.dataset=dsprites_noshape",
                                "--set", "train.steps=40", "--set", "train.report_every=20",
                                "--set", "train.checkpoint_every=20",
                                "--set", 'study.families=["beta_vae", "wae_gaussian"]',
                                "--set", "grid.beta_vae=[1]", "--set", "grid.wae_gaussian=[1]",
                                "--tracking", "wandb=wae-tests", *TINY, env=env,
                                joining=ray_head))
    return storage / "n", code, out, err


def test_a_study_on_dsprites_noshape_reports_its_one_task(noshape_study):
    """dsprites_noshape scores scale..posY only: one task, 4var; nothing says 5var."""
    experiment, code, out, err = noshape_study
    assert code == 0, err
    report = experiment / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert list(summary["answer_lines"]) == ["4var"]
    assert out.strip().splitlines()[-2:] == [summary["answer_lines"]["4var"],
                                             str(report / "index.html")]
    assert ", 4-var " in out and "5-var" not in out  # the progress lines
    results = pd.read_csv(report / "results.csv")
    assert list(results.columns[8:11]) == ["disentanglement_4var", "recon_test", "recon_train"]
    assert results["disentanglement_4var"].notna().all() and len(results) == 2 * 2 * 3
    files = {p.name for p in report.iterdir()}
    assert {"pareto_4var.csv", "figure1_4var.png", "figure2_reconstructions.png"} <= files
    assert not [name for name in files if "5var" in name]
    assert not [c for c in results.columns if "5var" in c]
    for trial in trial_dirs(experiment):
        assert {"eval/disentanglement_4var", "eval/recon_test"} <= set(tensorboard_scalars(trial))
        assert "eval/disentanglement_5var" not in tensorboard_scalars(trial)
    code, out, err = finish(cli("status", str(experiment)))
    assert code == 0, err
    assert "best 4-var so far" in out and "5-var" not in out


def test_a_study_tracked_by_wandb_offline_writes_one_run_per_trial(noshape_study):
    """A real study with `--tracking wandb` in W&B's offline mode: each trial's run file, read
    back record by record, names the trial and its group, holds its settings as config and
    the curve and evaluations at the training step. On a Ray the driver joined: Ray's W&B
    logging actor has that Ray's environment, and WANDB_MODE must reach it from the driver."""
    experiment, code, _, err = noshape_study
    assert code == 0, err
    trials = trial_dirs(experiment)
    assert len(trials) == 2
    for trial in trials:
        trial_id = json.loads((trial / "params.json").read_text())["trial_id"]
        (run_file,) = experiment.glob(f"wandb/offline-run-*-{trial_id}/run-{trial_id}.wandb")
        run, history = wandb_run(run_file)
        assert run.run_id == trial_id and trial_id in run.display_name
        assert (run.project, run.run_group) == ("wae-tests", "n")
        final = result_lines(trial)[-1]
        assert json.loads(run.config["trial"])["value"] == final["value"]
        assert [step for step, row in history if "loss" in row] == [20, 40]
        evaluated = [(step, row["disentanglement_4var"]) for step, row in history
                     if "disentanglement_4var" in row]
        assert evaluated == [(0, pytest.approx(evaluated[0][1])),
                             (40, pytest.approx(final["disentanglement_4var"]))]


def test_a_study_on_scream_dsprites_carries_the_painting_to_its_trials(
        dsprites_path, own_cache, tmp_path, ray_head):
    """The painting travels with the data through the object store (the head's workers have
    none in their cache) and its digest is in the provenance and the report's footer."""
    from PIL import Image

    cache = own_cache / "wae-study"
    rows, cols = np.meshgrid(np.arange(300), np.arange(240), indexing="ij")
    Image.fromarray(((rows + cols) % 256).astype(np.uint8)).convert("RGB").save(
        cache / "scream.jpg")
    env = {**os.environ, "XDG_CACHE_HOME": str(own_cache)}
    code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "s",
                                "--data", str(dsprites_path),
                                "--set", "train.dataset=scream_dsprites",
                                "--set", "train.steps=20", "--set", "train.report_every=10",
                                "--set", "train.checkpoint_every=20",
                                "--set", 'study.families=["beta_vae"]',
                                "--set", "grid.beta_vae=[1]", *TINY, env=env,
                                joining=ray_head))
    assert code == 0, err
    digest = hashlib.sha256((cache / "scream.jpg").read_bytes()).hexdigest()
    (run,) = json.loads((tmp_path / "s" / "provenance.json").read_text())
    assert run["painting"]["sha256"] == digest
    assert f"sha256 {digest}" in (tmp_path / "s" / "report" / "report.md").read_text()
    results = pd.read_csv(tmp_path / "s" / "report" / "results.csv")
    assert results["disentanglement_5var"].notna().all() and len(results) == 2 * 3
