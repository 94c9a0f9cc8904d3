"""The experiment folder's owner: trial folders, result lines, the finished rule, the choice of
checkpoint, the lock and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from trainables import checkpoint, experiment

STEPS = 200


def write_trial(exp: Path, name: str, steps: list[int], evaluated: list[int],
                error: bool = False) -> Path:
    """A trial folder with reports at `steps`; the first report of each step in `evaluated`
    carries an evaluation."""
    trial = exp / name
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(
        {"trial": {"family": "beta_vae", "value": 1.0, "steps": STEPS}}))
    lines = []
    for n, step in enumerate(steps):
        first = step not in steps[:n]
        lines.append({"step": step, **({"evaluation": []} if first and step in evaluated else {})})
    (trial / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if error:
        (trial / "error.txt").write_text("Traceback ...")
    return trial


def test_trial_folders_are_those_tune_wrote(tmp_path):
    write_trial(tmp_path, "b_trial", [0], [0])
    write_trial(tmp_path, "a_trial", [0], [0])
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("")
    (tmp_path / "only_results").mkdir()
    (tmp_path / "only_results" / "result.json").write_text("")
    (tmp_path / "params.json").write_text("{}")  # a file, not a folder
    (tmp_path / "study.toml").write_text("")
    names = [p.name for p in experiment.trial_dirs(tmp_path)]
    assert names == ["a_trial", "b_trial", "only_results"]


def test_params_flattened_and_a_line_cut_mid_write_skipped(tmp_path):
    trial = write_trial(tmp_path, "t", [0, 100], [0])
    with open(trial / "result.json", "a") as handle:
        handle.write('{"step": 200, "evalu')  # a kill mid-write
    warnings: list[str] = []
    record = experiment.read_trial(trial, warnings)
    assert record.config == {"family": "beta_vae", "value": 1.0, "steps": STEPS}
    assert [line.step for line in record.lines] == [0, 100]
    assert warnings == ["t/result.json line 3 unreadable, skipped"]
    assert record.last_step == 100 and not record.finished
    (trial / "params.json").write_text('{"trial": {"fam')  # Tune still writing it
    assert experiment.read_params(trial, warnings) == {}
    assert "t/params.json unreadable" in warnings[-1]


def test_finished_rule(tmp_path):
    done = experiment.read_trial(write_trial(tmp_path, "done", [0, 100, 200], [0, 200]))
    assert done.finished and not done.errored
    # restored from its weights-only final checkpoint: step 200 reported again, no evaluation
    again = experiment.read_trial(write_trial(tmp_path, "again", [0, 100, 200, 200], [0, 200]))
    assert again.lines[-1].step == STEPS and again.lines[-1].evaluation is None
    assert again.finished
    failed = experiment.read_trial(write_trial(tmp_path, "failed", [0, 100], [0], error=True))
    assert not failed.finished and failed.errored
    retried = experiment.read_trial(write_trial(tmp_path, "retried", [0, 200], [200], error=True))
    assert retried.finished and not retried.errored  # a retry finished it
    assert not experiment.reached_last_step(None, STEPS)
    assert not experiment.reached_last_step(STEPS, None)


def test_finished_rule_on_tune_trials():
    def trial(step):
        return SimpleNamespace(config={"trial": {"steps": STEPS}},
                               last_result={} if step is None else {"step": step})
    assert experiment.tune_trial_finished(trial(STEPS))
    assert not experiment.tune_trial_finished(trial(STEPS - 1))
    assert not experiment.tune_trial_finished(trial(None))


def save(folder: Path, step: int, truncated: bool = False) -> Path:
    path = checkpoint.save(folder, {"step": step, "config": {}})
    if truncated:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


def test_newest_loadable_checkpoint_with_fallbacks(tmp_path):
    assert checkpoint.newest_loadable(tmp_path) == checkpoint.Loaded(None, None, [])
    save(tmp_path / "checkpoint_000000", 10)
    newest = save(tmp_path / "checkpoint_000001", 20)
    found = checkpoint.newest_loadable(tmp_path)
    assert (found.path, found.payload["step"], found.skipped) == (newest, 20, [])

    save(newest, 20, truncated=True)
    found = checkpoint.newest_loadable(tmp_path)
    assert (found.path.name, found.payload["step"]) == ("checkpoint_000000", 10)
    assert [(p.name, "truncated or corrupt" in why) for p, why in found.skipped] == [
        ("checkpoint_000001", True)]

    save(tmp_path / "checkpoint_000000", 10, truncated=True)
    found = checkpoint.newest_loadable(tmp_path)
    assert found.path is None and found.payload is None
    assert [p.name for p, _ in found.skipped] == ["checkpoint_000001", "checkpoint_000000"]


def test_tunes_latest_first_then_only_older_ones(tmp_path):
    save(tmp_path / "checkpoint_000000", 10)
    latest = save(tmp_path / "checkpoint_000001", 20, truncated=True)
    save(tmp_path / "checkpoint_000002", 30)  # newer than Tune's latest: not considered
    found = checkpoint.newest_loadable(tmp_path, latest=latest)
    assert found.payload["step"] == 10 and [p for p, _ in found.skipped] == [latest]


def test_prune_empties_all_but_the_newest_and_leaves_a_note_naming_it(tmp_path):
    from pyarrow.fs import LocalFileSystem

    for step in range(3):
        save(tmp_path / f"checkpoint_{step:06d}", step)
    removed = experiment.prune_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == ["checkpoint_000000", "checkpoint_000001"]
    assert [p.name for p in experiment.checkpoint_dirs(tmp_path)] == ["checkpoint_000002"]
    for old in removed:  # the folder stays (Tune's saved state may name it), emptied
        assert [p.name for p in old.iterdir()] == [experiment.PRUNED_FILE]
        assert experiment.kept_instead(str(old), LocalFileSystem()) == str(
            tmp_path / "checkpoint_000002")
    assert experiment.kept_instead(str(tmp_path / "checkpoint_000002"), LocalFileSystem()) is None
    assert experiment.prune_checkpoints(tmp_path) == []  # pruned once
    assert checkpoint.newest_loadable(tmp_path).payload["step"] == 2


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path):
    path = tmp_path / "study.toml"
    experiment.write_atomic(path, "old")
    with pytest.raises(RuntimeError), experiment.replacing(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    experiment.write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["study.toml"]


def test_lock_held_or_not(tmp_path):
    assert not experiment.lock_held(tmp_path)
    assert not (tmp_path / experiment.LOCK_FILE).exists()  # checking creates no file
    with experiment.locked(tmp_path):
        # flock locks an open file: a second open, as another process's, finds it held
        assert experiment.lock_held(tmp_path)
        with pytest.raises(experiment.FolderInUse), experiment.locked(tmp_path):
            pass
    assert not experiment.lock_held(tmp_path)
    with experiment.locked(tmp_path):
        pass  # released: it can be taken again


def test_a_trials_config_written_earlier_reads_without_settings_removed_since(tmp_path):
    trial = tmp_path / "t"
    trial.mkdir()
    experiment.write_params(trial, "abcde_00000", {"trial": {"steps": STEPS, "retired": 1}})
    with pytest.warns(UserWarning, match="TrainConfig setting.s. retired"):
        assert experiment.read_trial(trial).config == {"steps": STEPS}


def test_a_trials_id_comes_from_its_params_then_its_reports_then_an_old_folder_name(tmp_path):
    trial = tmp_path / "any_name"
    trial.mkdir()
    experiment.write_params(trial, "abcde_00003", {"trial": {"steps": STEPS}})
    assert experiment.read_trial(trial).trial_id == "abcde_00003"
    assert experiment.read_trial(trial).config == {"steps": STEPS}
    (trial / "params.json").write_text(json.dumps({"trial": {"steps": STEPS}}))  # older
    (trial / "result.json").write_text(json.dumps({"step": 0, "trial_id": "abcde_00004"}) + "\n")
    assert experiment.read_trial(trial).trial_id == "abcde_00004"
    legacy = tmp_path / "train_trial_abcde_00005_5_family=beta_vae"
    legacy.mkdir()
    (legacy / "params.json").write_text(json.dumps({"trial": {"steps": STEPS}}))
    assert experiment.read_trial(legacy).trial_id == "abcde_00005"
