"""The bucket mirror: a remote experiment's driver files kept current in object storage."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.experiment import OPTUNA_FILE


class MirrorUploads(Callback):
    """A remote experiment's driver files, current in the bucket (`study.storage.Remote`):
    optuna.db uploaded after each step that changed it (when Tune's own state, which Ray
    uploads, may name a new or finished Optuna trial), and provenance.json put into Tune's
    staging folder before Ray first uploads it (a resumed study's staging folder holds the
    bucket's older copy, which Ray would upload over the new one)."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self._staged = False
        self._pushed: int | None = None  # optuna.db's modification time when last uploaded

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        from analysis.provenance import FILE

        if not self._staged and trials:
            shutil.copy2(self.remote.mirror / FILE, Path(trials[0].local_experiment_path) / FILE)
            self._staged = True

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        db = self.remote.mirror / OPTUNA_FILE
        changed = db.stat().st_mtime_ns if db.is_file() else None
        if changed != self._pushed:
            self.remote.push(OPTUNA_FILE)
            self._pushed = changed
