"""Ray Tune's MLflow and W&B callbacks, fed what `study.tracking.metrics_of` makes of a report.

Apart from `study.tracking` because importing Ray's callbacks imports the tracker's package
(~1.5 s of every `run` that tracks nothing)."""

from __future__ import annotations

from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback

from study.tracking import metrics_of


class MLflowRuns(MLflowLoggerCallback):
    """Ray's MLflow callback, fed the report's curve and evaluation against the step. Ray's
    own takes `timesteps_total or training_iteration` as the step, which cannot be 0 (the
    untrained models' evaluation): the metrics go to the trial's run at the training step
    here (Ray's `_trial_runs`: the run of each trial; tests/test_dependency_contracts.py)."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        metrics = metrics_of(result)
        step = metrics.pop("timesteps_total", None)
        if step is not None:
            self.mlflow_util.log_metrics(run_id=self._trial_runs[trial],
                                         metrics_to_log=metrics, step=step)


class WandbRuns(WandbLoggerCallback):
    """Ray's W&B callback, fed the report's curve and evaluation against the step. Ray's
    logging actor passes a result's `training_iteration` to `wandb.log` as the step: it is
    given the training step here (tests/study/test_tracking.py reads the steps back)."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        metrics = metrics_of(result)
        if "timesteps_total" in metrics:
            metrics["training_iteration"] = metrics["timesteps_total"]
        super().log_trial_result(iteration, trial, metrics)
