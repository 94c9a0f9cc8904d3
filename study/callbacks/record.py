"""The record of a study: each trial's params.json and result.json lines, which `status`,
`report` and `resume` read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables import experiment


class ResultFiles(Callback):
    """Each trial's params.json (at every start: PBT gives a clone a new config) and one
    result.json line per report, written to the driver's staging folder, which Ray uploads
    to the experiment with its saved state (so the experiment's files and Tune's state agree
    on which trials exist).

    In place of Ray's JsonLoggerCallback, which at every restart of a trial within a run (a
    PBT pause or clone, a retry) copies the experiment's result.json over the staging one,
    losing the reports made since Tune last uploaded the folder. Here the experiment's copy
    is read once per driver and trial, only when the staging folder has none (a resumed
    study's driver starts with an empty one)."""

    def __init__(self) -> None:
        self._opened: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._open(trial)
        experiment.write_params(trial.local_path, trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._open(trial)
        experiment.append_result_line(trial.local_path, result)

    def _open(self, trial: Any) -> None:
        if trial.trial_id in self._opened:
            return
        self._opened.add(trial.trial_id)
        local = Path(trial.local_path) / experiment.RESULT_FILE
        if local.exists():
            return
        from pyarrow.fs import FileType

        filesystem = trial.storage.storage_filesystem
        stored = f"{trial.storage.trial_fs_path}/{experiment.RESULT_FILE}"
        if filesystem.get_file_info(stored).type == FileType.File:
            local.parent.mkdir(parents=True, exist_ok=True)
            with filesystem.open_input_stream(stored) as src:
                local.write_bytes(src.read())
