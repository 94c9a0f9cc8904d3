"""The driver's Tune callbacks: each trial's params.json and result.json, one readable
progress line per reporting interval instead of Ray's verbose tables, TensorBoard curves, a
finished trial's older checkpoints pruned, and a remote experiment's driver files kept
current in the bucket."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback
from tensorboardX import SummaryWriter

from study.estimates import ONE_DAY_H, describe, estimate_hours, evaluations_per_trial
from trainables import experiment
from trainables.columns import SCORES
from trainables.experiment import OPTUNA_FILE, prune_checkpoints, tune_trial_finished
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
            line += (f", 4-var {report.score('disentanglement_4var'):.3f}, "
                     f"5-var {report.score('disentanglement_5var'):.3f}, "
                     f"recon_test {report.score('recon_test'):.1f}")
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


class PruneFinished(Callback):
    """When a trial finishes, keep only its final checkpoint
    (`trainables.experiment.prune_checkpoints`): a finished `paper` trial keeps 0.57 GB of
    weights instead of two 1.7 GB full checkpoints. Only trials that reached their last step:
    an errored trial keeps its fallback. With `at_end` (PBT, where another trial may still
    clone a finished one's earlier checkpoint) only once the whole study has ended."""

    def __init__(self, at_end: bool = False) -> None:
        self.at_end = at_end

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.at_end:
            _prune_if_finished(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.at_end:
            for trial in trials:
                _prune_if_finished(trial)


def _prune_if_finished(trial: Any) -> None:
    if trial.path and tune_trial_finished(trial):
        prune_checkpoints(trial.path, remote_filesystem(trial))


def remote_filesystem(trial: Any) -> Any:
    """The pyarrow file system of a trial on object storage; None for a local folder."""
    filesystem = trial.storage.storage_filesystem
    return None if filesystem.type_name == "local" else filesystem


def driver_folder(trial: Any) -> str:
    """Where the driver writes a trial's files: its folder, or on object storage Tune's local
    staging copy, which Ray uploads with its own files."""
    return trial.path if remote_filesystem(trial) is None else trial.local_path


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


TRAIN_SCALARS = ("loss", "recon", "n_diverged", "value")  # value: λ1 or β (PBT changes it)


class TensorBoardScalars(Callback):
    """Per-trial scalar curves in the trial's folder (`tensorboard --logdir EXPERIMENT`):
    train/loss, train/recon, train/n_diverged, train/value at every report, eval/<score> at
    evaluation steps, against the training step. Only these scalars: a result's lists
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
            scalars.update({f"eval/{k}": report.score(k) for k in SCORES})
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
