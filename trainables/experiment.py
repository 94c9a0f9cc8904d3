"""The experiment folder's one owner: its layout, how its files are read and written, and the
rules every command applies to them.

    <experiment>/study.toml              the resolved spec (`study.spec`)
    <experiment>/optuna.db               an adaptive study's Optuna study (`search_spaces.adaptive`)
    <experiment>/.wae-study.lock         held by the run or resume in progress
    <experiment>/<trial>/params.json     the trial's config, as Tune passed it
    <experiment>/<trial>/result.json     one JSON line per report (a kill may cut the last)
    <experiment>/<trial>/error.txt       Tune's record of a failed attempt
    <experiment>/<trial>/checkpoint_NNNNNN/pack.pt   (`trainables.checkpoint`)
    <experiment>/<trial>/checkpoint_NNNNNN/pruned.json   a pruned one: names the one kept
    <experiment>/<trial>/extra_metrics.json          (`wae-study evaluate`)

`run`, `resume`, `status`, `report`, `evaluate` and the trainable read and write the folder
through here, so they agree on what a trial folder is, when a trial is finished, and which
checkpoint to load. No torch or Ray at import: `wae-study status` reads files only.
"""

from __future__ import annotations

import fcntl
import json
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.config import trial_settings
from trainables.result_line import ResultLine

STUDY_FILE = "study.toml"
LOCK_FILE = ".wae-study.lock"
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
EXTRA_FILE = "extra_metrics.json"
OPTUNA_FILE = "optuna.db"
CHECKPOINT_PREFIX = "checkpoint_"
PRUNED_FILE = "pruned.json"
STEP_FILE = "step.json"
PBT_STATE_FILE = "pbt_state.json"  # the PBT scheduler's per-trial state, for resume and report


# ---- study.toml ---------------------------------------------------------------------------
def study_file(experiment_dir: str | os.PathLike) -> Path:
    return Path(experiment_dir) / STUDY_FILE


def read_study_text(experiment_dir: str | os.PathLike) -> str:
    """study.toml's text (OSError when there is none); undecodable bytes are replaced so that
    a damaged file can still be shown, and its parser names the problem."""
    return study_file(experiment_dir).read_text(encoding="utf-8", errors="replace")


# ---- trial folders ------------------------------------------------------------------------
def trial_dirs(experiment_dir: str | os.PathLike) -> list[Path]:
    """The trial folders (those Tune wrote params.json or result.json into), by name."""
    return sorted(p for p in Path(experiment_dir).iterdir() if p.is_dir() and (
        (p / PARAMS_FILE).is_file() or (p / RESULT_FILE).is_file()))


def read_params(trial_dir: str | os.PathLike, warnings: list[str] | None = None
                ) -> dict[str, Any]:
    """A trial's config as the trainable reads it (`trial_settings`); {} when params.json
    is missing or unreadable (Tune may be writing it), with a warning in `warnings`."""
    return trial_settings(_params_file(Path(trial_dir), warnings))


def _params_file(trial_dir: Path, warnings: list[str] | None) -> dict[str, Any]:
    """params.json as written (`write_params`): the trial's id and Tune's config of it."""
    path = trial_dir / PARAMS_FILE
    if not path.is_file():
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if warnings is not None:
            warnings.append(f"{path.parent.name}/{PARAMS_FILE} unreadable ({err})")
        return {}
    return params if isinstance(params, dict) else {}


def read_result_lines(trial_dir: str | os.PathLike, warnings: list[str] | None = None
                      ) -> list[ResultLine]:
    """result.json's reports in order (`ResultLine.read`); a line a kill cut mid-write is
    skipped (and named in `warnings`), so a study's folder stays readable while it runs and
    after a crash."""
    path = Path(trial_dir) / RESULT_FILE
    if not path.is_file():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                  .splitlines()):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            if warnings is not None:
                warnings.append(f"{path.parent.name}/{RESULT_FILE} line {number + 1} "
                                "unreadable, skipped")
            continue
        read = ResultLine.read(line) if isinstance(line, dict) else None
        if read is not None:
            lines.append(read)
    return lines


def read_pbt_state(experiment_dir: str | os.PathLike) -> dict[str, Any]:
    """The PBT scheduler's saved state (`search_spaces.pbt_scheduler`); {} where there is none
    (a grid or adaptive study, a PBT study before its first perturbation step) or it cannot
    be read."""
    try:
        state = json.loads((Path(experiment_dir) / PBT_STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def reached_last_step(step: Any, steps: Any) -> bool:
    """The one rule for a finished trial: it reported its last step. Not Tune's status (after
    Ctrl-C Tune marks the trials it stopped TERMINATED too), nor an evaluation at that step
    (a trial restored from its final checkpoint reports the last step again without one)."""
    return isinstance(step, int | float) and isinstance(steps, int | float) and step >= steps


def tune_trial_finished(trial: Any) -> bool:
    """`reached_last_step` for a Tune `Trial` (its last result and config)."""
    step = (trial.last_result or {}).get("step")
    return reached_last_step(step, trial_settings(trial.config).get("steps"))


def append_result_line(trial_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    """One report as a line of result.json, flushed at once (what `read_result_lines` reads;
    Tune's own additions, e.g. its timestamps, are kept: anything not JSON becomes text)."""
    with open(Path(trial_dir) / RESULT_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(result, default=str) + "\n")


def write_params(trial_dir: str | os.PathLike, trial_id: str, config: dict[str, Any]) -> None:
    """The trial's id and its config as Tune passes it (PBT changes it when a trial clones
    another): `{"trial_id": ..., "trial": {...}}`."""
    Path(trial_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(trial_dir) / PARAMS_FILE, json.dumps(
        {"trial_id": trial_id, **config}, indent=2, sort_keys=True, default=str))


@dataclass
class Trial:
    """One trial folder, read."""

    path: Path
    trial_id: str  # from params.json or the reports (the folder's name in older experiments)
    config: dict[str, Any]  # params.json's trial settings; {} when missing or unreadable
    lines: list[ResultLine]  # result.json's readable reports, in order
    error_file: bool  # Tune recorded a failed attempt (a retry may have finished it since)

    @property
    def last_step(self) -> int | None:
        """The highest step reported (a resumed trial may report steps again)."""
        return max((line.step for line in self.lines), default=None)

    @property
    def finished(self) -> bool:
        return reached_last_step(self.last_step, self.config.get("steps"))

    @property
    def errored(self) -> bool:
        """Failed, and no retry has finished it since."""
        return self.error_file and not self.finished


def read_trial(trial_dir: str | os.PathLike, warnings: list[str] | None = None) -> Trial:
    path = Path(trial_dir)
    params, lines = _params_file(path, warnings), read_result_lines(path, warnings)
    said = params.get("trial_id") or next((line.trial_id for line in lines if line.trial_id),
                                          None)
    return Trial(path, str(said or _legacy_trial_id(path.name)), trial_settings(params), lines,
                 (path / ERROR_FILE).exists())


_RAY_TRIAL_ID = re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?:_|$)")


def _legacy_trial_id(name: str) -> str:
    """A trial that never reported, in an experiment whose params.json had no id: Tune's id
    in the folder's name (`<name>_<id>_...` before `study.estimates.trial_dirname`)."""
    match = _RAY_TRIAL_ID.search(name)
    return match.group(1) if match else name


def read_trials(experiment_dir: str | os.PathLike, warnings: list[str] | None = None
                ) -> list[Trial]:
    return [read_trial(p, warnings) for p in trial_dirs(experiment_dir)]


# ---- checkpoints ----------------------------------------------------------------------------
# Newest means the highest training step (`STEP_FILE`, beside pack.pt), then the highest
# number: a driver killed before Tune saved its state resumes numbering from that older state,
# so a resumed trial writes its next checkpoints under numbers an earlier run already used.
def checkpoint_dirs(trial_dir: str | os.PathLike) -> list[Path]:
    """The trial's checkpoint folders, newest first; pruned ones (`prune_checkpoints`) are not
    checkpoints any more."""
    from pyarrow.fs import LocalFileSystem  # pyarrow: not for the command line's start-up

    local = LocalFileSystem()
    return [Path(path) for path in newest_first(local, [
        str(p) for p in Path(trial_dir).glob(f"{CHECKPOINT_PREFIX}*")
        if p.is_dir() and not pruned(local, str(p))])]


def around(trial_dir: str | os.PathLike | None, latest: Path) -> tuple[list[Path], list[Path]]:
    """The trial's local checkpoint folders (`checkpoint_dirs`) newer and older than `latest`
    (by `checkpoint_age`), each newest first; none without a trial folder."""
    from pyarrow.fs import LocalFileSystem

    local = LocalFileSystem()
    age = checkpoint_age(local, str(latest))
    ages = [(p, checkpoint_age(local, str(p)))
            for p in (checkpoint_dirs(trial_dir) if trial_dir is not None else [])]
    return [p for p, a in ages if a > age], [p for p, a in ages if a < age]


def pruned(filesystem: Any, folder: str) -> bool:
    """Whether a checkpoint folder holds only a note (`prune_checkpoints`,
    `mark_deleted_checkpoints`): a checkpoint saved into a noted folder since (a resumed
    trial reusing the number) says its step, and is a checkpoint again."""
    from pyarrow.fs import FileType

    def has(name: str) -> bool:
        return filesystem.get_file_info(f"{folder.rstrip('/')}/{name}").type == FileType.File

    return has(PRUNED_FILE) and not has(STEP_FILE)


def write_checkpoint_step(directory: str | os.PathLike, step: int) -> None:
    """Say a checkpoint's training step beside its pack.pt, for ordering without loading it."""
    write_atomic(Path(directory) / STEP_FILE, json.dumps({"step": int(step)}))


def checkpoint_step(filesystem: Any, folder: str) -> int:
    """A checkpoint folder's training step; -1 where it does not say (older experiments)."""
    try:
        with filesystem.open_input_stream(f"{folder.rstrip('/')}/{STEP_FILE}") as src:
            return int(json.loads(src.read().decode())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def checkpoint_age(filesystem: Any, folder: str) -> tuple[int, str]:
    """What orders checkpoint folders: (step, name); the larger, the newer."""
    return checkpoint_step(filesystem, folder), posixpath.basename(folder.rstrip("/"))


def newest_first(filesystem: Any, folders: list[str]) -> list[str]:
    """Checkpoint folders (paths on `filesystem`) ordered newest first (`checkpoint_age`)."""
    return sorted(folders, key=lambda f: checkpoint_age(filesystem, f), reverse=True)


def _checkpoint_folders(trial_dir: str | os.PathLike, filesystem: Any) -> list[Any]:
    from pyarrow.fs import FileSelector, FileType

    found = filesystem.get_file_info(FileSelector(str(trial_dir), allow_not_found=True))
    return [info for info in found if info.type == FileType.Directory
            and info.base_name.startswith(CHECKPOINT_PREFIX)]


def prune_checkpoints(trial_dir: str | os.PathLike, filesystem: Any = None) -> list[Path]:
    """Empty every checkpoint folder of a finished trial but the newest (its final one,
    weights only unless `keep_optimizer_state`), leaving in each a note that names the newest;
    returns what was pruned. While a trial runs Tune keeps its latest two full checkpoints, the
    fallback resume needs.

    The folders stay because Tune saves its experiment state only every so often: a driver
    killed after a trial's last report restores it from the checkpoint that state names, and
    Ray refuses a checkpoint folder that is gone. The trainable follows the note to the final
    checkpoint (`kept_instead`). `filesystem`: the pyarrow file system `trial_dir` is a path
    on (object storage), when not a local folder."""
    from pyarrow.fs import FileSelector, FileType, LocalFileSystem

    filesystem = filesystem or LocalFileSystem()
    names = newest_first(filesystem, [info.path for info in
                                      _checkpoint_folders(trial_dir, filesystem)])
    pruned = []
    for name in names[1:]:
        contents = filesystem.get_file_info(FileSelector(name, recursive=True))
        if [c.base_name for c in contents] == [PRUNED_FILE]:
            continue  # pruned before
        _write_note(filesystem, name, names[0])  # the note first: no gap
        for item in sorted(contents, key=lambda c: c.path, reverse=True):  # files, then dirs
            if item.base_name == PRUNED_FILE and posixpath.dirname(item.path) == name:
                continue
            if item.type == FileType.Directory:
                filesystem.delete_dir(item.path)
            else:
                filesystem.delete_file(item.path)
        pruned.append(Path(name))
    return pruned


def mark_deleted_checkpoints(trial_dir: str | os.PathLike, filesystem: Any = None) -> list[str]:
    """Before a resume: put a note naming the trial's newest checkpoint where Tune deleted an
    older one; returns the folders noted.

    Tune keeps a running trial's latest two checkpoints, deleting the older ones as new ones
    register, but saves its experiment state only every so often (on object storage, uploads it
    later still): a killed driver's state can name a checkpoint deleted since, which Ray refuses
    to restore from, failing the trial. With the note there the trainable follows it to the
    newest checkpoint (`kept_instead`), as it does for a finished trial's pruned ones."""
    from pyarrow.fs import LocalFileSystem

    filesystem = filesystem or LocalFileSystem()
    folders = _checkpoint_folders(trial_dir, filesystem)
    kept = newest_first(filesystem, [info.path for info in folders
                                     if not pruned(filesystem, info.path)])
    numbers = [int(match.group(1)) for info in folders
               if (match := re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", info.base_name))]
    if not kept or not numbers:
        return []
    present = set(numbers)
    noted = []
    for number in range(max(numbers)):
        if number not in present:
            folder = posixpath.join(str(trial_dir), f"{CHECKPOINT_PREFIX}{number:06d}")
            _write_note(filesystem, folder, kept[0])
            noted.append(folder)
    return noted


def _write_note(filesystem: Any, folder: str, kept: str) -> None:
    filesystem.create_dir(folder, recursive=True)
    with filesystem.open_output_stream(f"{folder}/{PRUNED_FILE}") as out:
        out.write(json.dumps({"kept": posixpath.basename(kept)}).encode())


def kept_instead(checkpoint_path: str, filesystem: Any) -> str | None:
    """For a pruned checkpoint folder, the path of the checkpoint kept in its place, following
    notes to one that was not pruned; None for a checkpoint that was not pruned."""
    path, seen = checkpoint_path.rstrip("/"), set()
    while path not in seen:
        seen.add(path)
        if not pruned(filesystem, path):
            return None if path == checkpoint_path.rstrip("/") else path
        with filesystem.open_input_stream(f"{path}/{PRUNED_FILE}") as src:
            path = posixpath.join(posixpath.dirname(path), json.loads(src.read().decode())["kept"])
    return path  # notes in a circle: the last one named


# ---- the lock: one run or resume per folder -----------------------------------------------
class FolderInUse(RuntimeError):
    """Another process holds the experiment folder's lock."""


@contextmanager
def locked(experiment_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the folder's lock while inside; FolderInUse at once if another process holds it."""
    handle = open(Path(experiment_dir) / LOCK_FILE, "a+")  # noqa: SIM115 (held for the context)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FolderInUse(str(experiment_dir)) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_held(experiment_dir: str | os.PathLike) -> bool:
    """True while a run or resume holds the folder's lock (creates no lock file)."""
    lock = Path(experiment_dir) / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# ---- atomic writes ------------------------------------------------------------------------
@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; moved over `path` when the block ends,
    removed if it fails: readers (and a crash) see the old file or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
