"""A study on another dataset end to end through the real command line: its Higgins tasks
are the ones the columns, the progress lines, the report, its files and `status` name."""

from __future__ import annotations

import json

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
