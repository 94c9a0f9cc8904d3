"""A corrupt or truncated latest checkpoint falls back to the previous one, else a restart."""

from __future__ import annotations

import pytest
from ray import tune

from trainables import checkpoint
from trainables.trainable import restorable_payload


def write(folder, step: int, corrupt: bool = False):
    path = checkpoint.save(folder, {"step": step, "config": {}})
    if corrupt:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


def test_latest_good_checkpoint_is_used(tmp_path):
    write(tmp_path / "checkpoint_000000", 10)
    latest = write(tmp_path / "checkpoint_000001", 20)
    assert restorable_payload(tune.Checkpoint.from_directory(str(latest)))["step"] == 20


def test_truncated_latest_falls_back_to_the_previous(tmp_path):
    write(tmp_path / "checkpoint_000000", 10)
    latest = write(tmp_path / "checkpoint_000001", 20, corrupt=True)
    with pytest.warns(UserWarning, match="latest checkpoint unusable"):
        payload = restorable_payload(tune.Checkpoint.from_directory(str(latest)))
    assert payload["step"] == 10


def test_no_usable_checkpoint_restarts_with_the_reason(tmp_path):
    write(tmp_path / "checkpoint_000000", 10, corrupt=True)
    latest = write(tmp_path / "checkpoint_000001", 20, corrupt=True)
    with pytest.warns(UserWarning, match="restarts from step 0"):
        assert restorable_payload(tune.Checkpoint.from_directory(str(latest))) is None
    assert restorable_payload(None) is None


def test_without_a_checkpoint_from_tune_the_trials_own_folder_is_searched(tmp_path):
    assert restorable_payload(None, tmp_path) is None  # a fresh trial
    write(tmp_path / "checkpoint_000000", 10)
    write(tmp_path / "checkpoint_000001", 20, corrupt=True)
    with pytest.warns(UserWarning, match="resuming from checkpoint_000000 in the trial's folder"):
        assert restorable_payload(None, tmp_path)["step"] == 10
