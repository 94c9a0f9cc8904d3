"""`study.tracking`: what a tracker is fed per report and a missing extra refused before Ray
starts. Real studies' runs: MLflow's in tests/study/test_run.py (the grid study), W&B's
offline in tests/study/test_datasets_study.py (the dsprites_noshape study)."""

from __future__ import annotations

import sys

import pytest

from study.cli import main
from study.tracking import metrics_of
from trainables.columns import scores as dataset_scores
from trainables.result_line import ResultLine


def test_a_tracker_gets_the_curve_and_only_real_evaluations_against_the_step():
    scores = dict.fromkeys(dataset_scores("dsprites"), 0.5)
    plain = metrics_of(ResultLine(step=20, loss=3.0, recon=2.0, value=1.0,
                                  scores=scores).to_report())
    assert plain == {"loss": 3.0, "recon": 2.0, "n_diverged": 0.0, "value": 1.0,
                     "timesteps_total": 20}
    evaluated = metrics_of(ResultLine(step=40, loss=1.0, scores=scores,
                                      evaluation=[{"replicate": 0}]).to_report())
    assert evaluated["disentanglement_5var"] == 0.5 and evaluated["timesteps_total"] == 40
    assert "recon" not in evaluated  # NaN: not measured, not logged


def test_a_study_pickled_before_the_callbacks_moved_still_finds_them():
    """tuner.pkl names a callback by module path: `study.tracking.MLflowRuns` until the
    callbacks moved to `study.callbacks.trackers`; such a study must still resume."""
    import pickle

    from study.callbacks.trackers import MLflowRuns

    old_path = pickle.dumps(MLflowRuns, protocol=0).replace(  # protocol 0: names as text
        b"study.callbacks.trackers", b"study.tracking")
    assert b"study.tracking" in old_path
    assert pickle.loads(old_path) is MLflowRuns


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
