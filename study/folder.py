"""The experiment folder's shared helpers: the lock that keeps one run or resume per folder,
atomic writes, and the pruning of a finished trial's checkpoints. `run`, `resume`, `status`
and `evaluate` use them; none depends on another command's module."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from study.errors import BadInput

LOCK_NAME = ".wae-study.lock"


@contextmanager
def exclusive(experiment_dir: Path) -> Iterator[None]:
    """Refuse a second run/resume on the same folder while one is in progress."""
    handle = open(experiment_dir / LOCK_NAME, "a+")  # noqa: SIM115 (held for the context)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BadInput(f"{experiment_dir} is in use by another wae-study run or resume; "
                       "wait for it to finish or stop it first") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def prune_checkpoints(trial_dir: str | os.PathLike) -> list[Path]:
    """Delete every `checkpoint_*` folder of a finished trial but the newest (its final one,
    weights only unless `keep_optimizer_state`); returns what was removed. While a trial runs
    Tune keeps its latest two full checkpoints, the fallback resume needs."""
    found = sorted(p for p in Path(trial_dir).glob("checkpoint_*") if p.is_dir())
    for old in found[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return found[:-1]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it over: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
