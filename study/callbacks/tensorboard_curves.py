"""TensorBoard: per-trial scalar curves beside the trial's files."""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback
from tensorboardX import SummaryWriter

from study.callbacks.folders import driver_folder
from trainables.columns import is_score
from trainables.result_line import ResultLine

TRAIN_SCALARS = ("loss", "recon", "n_diverged", "value")  # value: λ1 or β (PBT changes it)


class TensorBoardScalars(Callback):
    """Per-trial scalar curves in the trial's folder (`tensorboard --logdir EXPERIMENT`):
    train/loss, train/recon, train/n_diverged, train/value at every report, eval/<score> at
    evaluation steps (`trainables.columns.scores` of the trial's dataset), against the
    training step. Only these scalars: a result's lists
    (member losses, evaluation rows) stay in result.json."""

    def __init__(self) -> None:
        self._writers: dict[str, Any] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if trial.trial_id not in self._writers:
            self._writers[trial.trial_id] = SummaryWriter(driver_folder(trial), flush_secs=30)
        report = ResultLine.read(result)
        if report is None:
            return
        writer = self._writers[trial.trial_id]
        scalars = {f"train/{k}": float(getattr(report, k)) for k in TRAIN_SCALARS}
        if report.evaluation is not None:
            scalars.update({f"eval/{k}": v for k, v in report.scores.items() if is_score(k)})
        for tag, value in scalars.items():
            if math.isfinite(value):
                writer.add_scalar(tag, value, global_step=report.step)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            self._close(trial)

    def _close(self, trial: Any) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        if writer is not None:
            writer.close()
