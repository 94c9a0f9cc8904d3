"""`study.tracking`: what a tracker is fed per report, and a missing extra refused before Ray
starts. The MLflow run of a real study is checked in tests/study/test_run.py."""

from __future__ import annotations

import sys

import pytest

from study.cli import main
from study.tracking import metrics_of
from trainables.columns import SCORES
from trainables.result_line import ResultLine


def test_a_tracker_gets_the_curve_and_only_real_evaluations_against_the_step():
    scores = dict.fromkeys(SCORES, 0.5)
    plain = metrics_of(ResultLine(step=20, loss=3.0, recon=2.0, value=1.0,
                                  scores=scores).to_report())
    assert plain == {"loss": 3.0, "recon": 2.0, "n_diverged": 0.0, "value": 1.0,
                     "timesteps_total": 20}
    evaluated = metrics_of(ResultLine(step=40, loss=1.0, scores=scores,
                                      evaluation=[{"replicate": 0}]).to_report())
    assert evaluated["disentanglement_5var"] == 0.5 and evaluated["timesteps_total"] == 40
    assert "recon" not in evaluated  # NaN: not measured, not logged


@pytest.mark.parametrize(("args", "message"), [
    (["--tracking", "wandb"], "pip install -e '.[wandb]'"),
    (["--tracking", "tensorboard"], "--tracking must be mlflow[=URI] or wandb[=PROJECT]"),
])
def test_a_missing_or_unknown_tracker_exits_2_before_anything_is_written(
        tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    assert main(["run", "quick", "--storage", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
