"""A corrupt or truncated latest checkpoint falls back to the previous one, else a restart."""

from __future__ import annotations

import pytest
from ray import tune

from trainables import checkpoint, experiment
from trainables.trainable import restorable_payload


def write(folder, step: int, corrupt: bool = False, trial_id: str | None = None):
    path = checkpoint.save(folder, {"step": step, "config": {}, "trial_id": trial_id})
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


def test_a_pruned_latest_leads_to_the_final_checkpoint_kept_in_its_place(tmp_path):
    """Tune's saved state may name a checkpoint pruned when the trial finished."""
    write(tmp_path / "checkpoint_000000", 10)
    write(tmp_path / "checkpoint_000001", 20)
    experiment.prune_checkpoints(tmp_path)
    stale = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))
    assert restorable_payload(stale)["step"] == 20  # object storage: no folder to search
    assert restorable_payload(stale, tmp_path, "t1", 20)["step"] == 20


def test_a_finished_trials_own_final_checkpoint_beats_tunes_lagging_latest(tmp_path):
    write(tmp_path / "checkpoint_000000", 10, trial_id="t1")
    write(tmp_path / "checkpoint_000001", 20, trial_id="t1")
    stale = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))
    with pytest.warns(UserWarning, match="not trained again"):
        assert restorable_payload(stale, tmp_path, "t1", 20)["step"] == 20
    # not final, or another trial's: Tune's latest, as recorded
    assert restorable_payload(stale, tmp_path, "t1", 30)["step"] == 10
    assert restorable_payload(stale, tmp_path, "t2", 20)["step"] == 10


def test_a_deleted_latest_named_by_a_stale_state_leads_to_the_newest(tmp_path):
    """Tune deleted checkpoints 0 and 1 as 2 and 3 registered, but its saved state still names
    1: before the resume the deleted folders get a note naming the newest, which Ray's check
    that the folder exists passes and the trainable follows."""
    from pyarrow.fs import FileType, LocalFileSystem

    write(tmp_path / "checkpoint_000002", 30)
    write(tmp_path / "checkpoint_000003", 40)
    noted = experiment.mark_deleted_checkpoints(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in noted] == ["checkpoint_000000", "checkpoint_000001"]
    stale = tmp_path / "checkpoint_000001"
    assert LocalFileSystem().get_file_info(str(stale)).type == FileType.Directory
    assert restorable_payload(tune.Checkpoint.from_directory(str(stale)))["step"] == 40
    assert experiment.mark_deleted_checkpoints(tmp_path) == []  # noted once


def test_checkpoint_numbers_reused_after_a_stale_resume_are_ordered_by_step(tmp_path):
    """A resume from a state that named checkpoint 1 numbers its next checkpoints from 2
    again, over the lost run's 2 and 3: the newest is the one with the highest step."""
    write(tmp_path / "checkpoint_000002", 60)  # written by the resumed run
    write(tmp_path / "checkpoint_000003", 40)  # left by the killed run
    assert [p.name for p in experiment.checkpoint_dirs(tmp_path)] == [
        "checkpoint_000002", "checkpoint_000003"]
    assert checkpoint.newest_loadable(tmp_path).payload["step"] == 60
    experiment.prune_checkpoints(tmp_path)  # the trial finished: its final one stays
    assert [p.name for p in experiment.checkpoint_dirs(tmp_path)] == ["checkpoint_000002"]
    experiment.mark_deleted_checkpoints(tmp_path)  # a note naming a pruned one is followed on
    stale = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))
    assert restorable_payload(stale)["step"] == 60


def test_a_checkpoint_saved_into_a_noted_folder_is_a_checkpoint_and_notes_chain(tmp_path):
    """The resumed trial of a state naming checkpoint 0 saves its next checkpoint as 1, a
    folder noted before the resume: that checkpoint counts, and a note naming a folder that
    was pruned since is followed on to the one kept."""
    write(tmp_path / "checkpoint_000002", 40)
    experiment.mark_deleted_checkpoints(tmp_path)  # 0 and 1 name 2
    write(tmp_path / "checkpoint_000001", 50)  # the resumed run's next checkpoint
    assert [p.name for p in experiment.checkpoint_dirs(tmp_path)] == [
        "checkpoint_000001", "checkpoint_000002"]
    experiment.prune_checkpoints(tmp_path)  # finished: 2 now names 1
    assert [p.name for p in experiment.checkpoint_dirs(tmp_path)] == ["checkpoint_000001"]
    stale = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))  # 0 -> 2 -> 1
    assert restorable_payload(stale)["step"] == 50
