"""`study.tracking`: what a tracker is fed per report, a missing extra refused before Ray
starts, and a real study's W&B runs (offline). A real study's MLflow runs are checked in
tests/study/test_run.py."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from study.cli import main
from study.tracking import metrics_of
from tests.study.helpers import TINY, cli, finish, result_lines, trial_dirs
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


@pytest.mark.integration
def test_a_study_tracked_by_wandb_offline_writes_one_run_per_trial(dsprites_path, tmp_path,
                                                                     ray_head):
    """A real study with `--tracking wandb` in W&B's offline mode: each trial's run file, read
    back record by record, names the trial and its group, holds its settings as config and
    the curve and evaluations at the training step. On a Ray the driver joined: Ray's W&B
    logging actor has that Ray's environment, and WANDB_MODE must reach it from the driver."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    code, _, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--name", "w",
                              "--set", "train.steps=40", "--set", "train.report_every=20",
                              "--set", "study.families=['beta_vae']",
                              "--tracking", "wandb=wae-tests", *TINY, env=env,
                              joining=ray_head))
    assert code == 0, err
    experiment = tmp_path / "w"
    trials = trial_dirs(experiment)
    assert len(trials) == 2
    for trial in trials:
        trial_id = json.loads((trial / "params.json").read_text())["trial_id"]
        (run_file,) = experiment.glob(f"wandb/offline-run-*-{trial_id}/run-{trial_id}.wandb")
        run, history = wandb_run(run_file)
        assert run.run_id == trial_id and trial_id in run.display_name
        assert (run.project, run.run_group) == ("wae-tests", "w")
        final = result_lines(trial)[-1]
        assert json.loads(run.config["trial"])["value"] == final["value"]
        assert [step for step, row in history if "loss" in row] == [20, 40]
        evaluated = [(step, row["disentanglement_5var"]) for step, row in history
                     if "disentanglement_5var" in row]
        assert evaluated == [(0, pytest.approx(evaluated[0][1])),
                             (40, pytest.approx(final["disentanglement_5var"]))]


def wandb_run(path: Path) -> tuple[SimpleNamespace, list[tuple[int, dict]]]:
    """The run record (its config as {key: JSON}) and the history (step, {key: value}) of a
    W&B run file: W&B's transaction log, LevelDB's log format (32 KiB blocks of records with a
    7-byte header: CRC, length, kind FULL/FIRST/MIDDLE/LAST) after a 7-byte file header, each
    record a `wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, run, history = header, b"", None, []
    while pos + header <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if left < header or (kind, length) == (0, 0):  # a block's padding
            pos += left
            continue
        pending += data[pos + header:pos + header + length]
        pos += header + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            if record.HasField("run"):
                run = record.run
            elif record.HasField("history"):
                history.append((record.history.step.num,
                                {item.key or "/".join(item.nested_key):
                                 json.loads(item.value_json) for item in record.history.item}))
    assert run is not None, "no run record"
    config = {item.key or "/".join(item.nested_key): item.value_json
              for item in run.config.update}
    return SimpleNamespace(run_id=run.run_id, display_name=run.display_name,
                           project=run.project, run_group=run.run_group,
                           config=config), history
