"""The console: one readable line when a trial starts, per report at most every few seconds,
at every evaluation and trial end, and the study's estimated wall time once."""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from study.estimates import ONE_DAY_H, describe, estimate_hours, evaluations_per_trial
from trainables.columns import disentanglement, study_tasks, task_short
from trainables.result_line import ResultLine


class ProgressLines(Callback):
    """Prints a line when a trial starts, per result at most every `min_interval_s` seconds,
    and at every trial end; after the first trial's first training report, the study's
    estimated wall time, measured on the resources it runs on (a warning beyond a day)."""

    def __init__(self, total_trials: int | None, train: dict[str, Any] | None = None,
                 min_interval_s: float = 5.0) -> None:
        self.total = total_trials
        self.train = train
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._done: set[str] = set()
        self._started: set[str] = set()
        self._evaluated_at: dict[str, float] = {}  # trial -> time_total_s of its step-0 report
        self._estimated = False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.last_result.get("step") or trial.trial_id in self._started:
            # a retry, a resumed study, or PBT restarting a paused or cloned trial
            print(f"[{time.strftime('%H:%M:%S')}] {describe(trial.config)} continues from "
                  "its checkpoint", flush=True)
            return
        self._started.add(trial.trial_id)
        doing = ("evaluating the untrained models (step 0)"
                 if (self.train or {}).get("eval_at_start") else "training")
        print(f"[{time.strftime('%H:%M:%S')}] started {describe(trial.config)}: {doing}",
              flush=True)

    def _estimate(self, trials: list, trial: Any, result: ResultLine) -> None:
        """Print the study's estimated wall time once, from this trial's first steps."""
        if self._estimated or not self.train or not self.total:
            return
        if result.step == 0:
            self._evaluated_at[trial.trial_id] = result.time_total_s or 0.0
            return
        # without a step-0 evaluation, the first report's time is all training (and set-up)
        evaluation_s = self._evaluated_at.get(
            trial.trial_id, None if self.train["eval_at_start"] else 0.0)
        if evaluation_s is None or result.evaluation is not None:
            return
        seconds = (result.time_total_s or 0.0) - evaluation_s
        if seconds <= 0:
            return
        self._estimated = True
        rate = result.step / seconds
        at_a_time = max(1, sum(t.status == "RUNNING" for t in trials))
        hours = estimate_hours(self.total, int(self.train["steps"]), rate,
                               evaluations_per_trial(self.train), evaluation_s, at_a_time)
        line = (f"[{time.strftime('%H:%M:%S')}] estimated wall time {hours:.1f} h "
                f"({rate:.1f} steps/s per trial, {evaluation_s:.0f} s per evaluation, "
                f"{at_a_time} trials at a time)")
        if hours > ONE_DAY_H:
            line += (": more than a day on these resources; add GPUs (--gpus-per-trial) or "
                     "nodes, or run a smaller study (the laptop or quick preset)")
        print(line, flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        report = ResultLine.read(result)
        if report is None:
            return
        self._estimate(trials, trial, report)
        now = time.monotonic()
        said = report.evaluation is not None or report.cloned_from is not None
        if now - self._last < self.min_interval_s and not said:
            return
        self._last = now
        running = sum(t.status == "RUNNING" for t in trials)
        line = (f"[{time.strftime('%H:%M:%S')}] {len(self._done)}/{self.total or '?'} done, "
                f"{running} running | {describe(trial.config)}: step {report.step}")
        if math.isfinite(report.loss):
            line += f", loss {report.loss:.1f}"
        if report.evaluation is not None:
            tasks = study_tasks({"train": self.train or {}})  # `train`: the study's [train]
            line += "".join(f", {task_short(task)} {report.score(disentanglement(task)):.3f}"
                            for task in tasks) + f", recon_test {report.score('recon_test'):.1f}"
        if report.n_diverged:
            line += f", {report.n_diverged} diverged"
        if report.cloned_from:
            line += f" (PBT: cloned trial {report.cloned_from} at step {report.cloned_at})"
        print(line, flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._done.add(trial.trial_id)
        print(f"[{time.strftime('%H:%M:%S')}] finished {describe(trial.config)} "
              f"({len(self._done)}/{self.total or '?'})", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] trial {describe(trial.config)} failed; "
              "it retries from its last checkpoint while retries remain", flush=True)
