"""Studies on other datasets end to end through the real command line: their Higgins tasks
are the ones the columns, the progress lines, the report, its files and `status` name;
scream_dsprites' painting reaches the trials and the provenance."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from tests.study.helpers import TINY, cli, finish, tensorboard_scalars, trial_dirs

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study


def test_a_study_on_dsprites_noshape_reports_its_one_task(dsprites_path, tmp_path, ray_head):
    """dsprites_noshape scores scale..posY only: one task, 4var; nothing says 5var."""
    code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "n",
                                "--set", "train.dataset=dsprites_noshape",
                                "--set", "train.steps=40", "--set", "train.report_every=20",
                                "--set", "train.checkpoint_every=20",
                                "--set", 'study.families=["beta_vae", "wae_gaussian"]',
                                "--set", "grid.beta_vae=[1]", "--set", "grid.wae_gaussian=[1]",
                                *TINY, joining=ray_head))
    assert code == 0, err
    experiment = tmp_path / "n"
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
