"""Ray Tune's asynchronous population-based training with the project's rules
(`search_spaces.pbt`): populations per family, ranked by the scalar objective or by
non-dominated sorting (`[pbt] exploit`), clones keep their own seeds, perturbations only at
multiples of the interval (the checkpoint steps), none at a trial's last step.

The scheduler's per-trial state (last perturbation step, last score, the two measures it was
scored on, its rank), its random state and (synchronous mode) the step where the population
meets next are saved to `<experiment>/pbt_state.json` at every perturbation step and read back
when `resume` re-adds the trials, so a resumed study neither perturbs twice nor forgets
scores: it ranks as it would have. `[pbt].seed` seeds
the perturbations; which top trial a bottom one clones is Ray's random choice, and (unless
`[pbt] synch`) trials interleave asynchronously: a PBT study is not bitwise repeatable.

Ray offers no public hook for ranking within families, keeping a clone's seeds or restoring
the scheduler's bookkeeping: `_quantiles`, `_checkpoint_or_exploit`, `_get_new_config` and
`_save_trial_state` are overridden (and the public `choose_trial_to_run`, which keeps a
resumed synchronous population moving and gives the waiting trial that reported longest ago its
turn) and `_trial_state` / `_next_perturbation_sync` read
and written, under the pinned Ray minor; tests/test_dependency_contracts.py fails naming the pin
when one of them changes.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from search_spaces import pbt
from trainables import experiment, objectives
from trainables.columns import primary_task
from trainables.config import trial_settings
from trainables.datasets import DSPRITES

OBJECTIVE_KEY = "pbt_objective"  # what the scheduler ranks by (added to each result it sees)
STATE_FILE = experiment.PBT_STATE_FILE


class PBTScheduler(PopulationBasedTraining):
    """Ray Tune's asynchronous PBT with the project's rules: populations per family, ranked
    by `[pbt] exploit`, clones keep their own seeds, no perturbation at a trial's last step,
    state saved beside the experiment for `resume`. Trials are scored on `task` (the study's
    primary task); `scale` is the study's box (`[report]`), in which `exploit = "pareto"`
    normalises the two measures."""

    def __init__(self, pbt: dict[str, Any], steps: int, scale: pbt.Scale, task: str) -> None:
        self._pbt = dict(pbt)
        self._steps = int(steps)
        self._scale = scale
        self._task = task
        self._rng = random.Random(int(pbt["seed"]))
        self._saved: dict[str, Any] | None = None  # pbt_state.json, read at the first add
        # (disentanglement, recon) of the result each trial was last scored on
        # (`_save_trial_state`)
        self._measures: dict[Any, tuple[float, float]] = {}
        self._ranks: dict[Any, dict[str, int]] = {}  # where each trial stood when last ranked
        self._reports = 0  # results seen, counted: the order in which trials last reported
        self._last_report: dict[Any, int] = {}
        super().__init__(
            time_attr="step", metric=OBJECTIVE_KEY, mode="max",
            perturbation_interval=int(pbt["perturbation_interval"]),
            quantile_fraction=float(pbt["quantile_fraction"]),
            resample_probability=float(pbt["resample_probability"]),
            custom_explore_fn=self._explore, log_config=True, synch=bool(pbt["synch"]))

    # ---- what a trial is ---------------------------------------------------------------
    @staticmethod
    def _family(trial: Any) -> str:
        return trial_settings(trial.config)["family"]

    def _explore(self, config: dict[str, Any]) -> dict[str, Any]:
        """The donor's config with a perturbed value (called by Ray on the copied config)."""
        settings = trial_settings(config)
        new_value = pbt.perturb(float(settings["value"]), settings["family"], self._pbt,
                                self._rng)
        return {**config, "trial": {**settings, "value": new_value}}

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        """The explored config, with the bottom trial's own member seeds kept (private: the
        public `custom_explore_fn` sees the donor's config only)."""
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        seeds = trial_settings(trial.config).get("seeds")
        new_config["trial"] = {**trial_settings(new_config), "seeds": seeds}
        return new_config, operations

    # ---- Ray's hooks -------------------------------------------------------------------
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        if self._saved is None:
            self._saved = experiment.read_pbt_state(trial.local_experiment_path)
            if "rng" in self._saved:
                version, internal, gauss = self._saved["rng"]
                self._rng.setstate((version, tuple(internal), gauss))
                # synchronous mode: where the population meets next (else no trial is run)
                self._next_perturbation_sync = self._saved["next_sync"]
        kept = self._saved.get("trials", {}).get(trial.trial_id)
        if kept:
            state = self._trial_state[trial]
            state.last_perturbation_time = kept["last_perturbation_time"]
            state.last_train_time = kept["last_train_time"]
            state.last_score = kept["last_score"]
            if kept.get("measures"):
                self._measures[trial] = tuple(kept["measures"])
            if kept.get("rank"):
                self._ranks[trial] = kept["rank"]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._reports += 1
        self._last_report[trial] = self._reports
        step = int(result.get("step", 0))
        interval = int(self._pbt["perturbation_interval"])
        self._note_progress(self._trial_state[trial], step, interval)
        if step >= self._steps:
            return TrialScheduler.CONTINUE  # a last step is never perturbed: trials end as is
        if step % interval:
            # only at the checkpoint steps: a trial restored from a checkpoint after a resume
            # does not report that step again, and Ray would perturb it at its next report
            return TrialScheduler.CONTINUE
        scored = {**result, OBJECTIVE_KEY: objectives.score_for(result, self._pbt, self._task)}
        before = self._trial_state[trial].last_perturbation_time
        decision = super().on_trial_result(tune_controller, trial, scored)
        if self._trial_state[trial].last_perturbation_time != before:
            self._write_state(tune_controller, trial)
        return decision

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """Ray's rule (`_least_trained`), with one change in synchronous mode: when no trial
        runs and every waiting one stands at or past the step where the population meets, the
        meeting moves to the perturbation step after the earliest of them. After a resume, a
        trial restored from its own checkpoint at a meeting step trains on past it (it never
        reports that step); the trial that clones it there takes its step too, Ray's next
        meeting is where both stand, and no trial was left to run (the study hung)."""
        chosen = self._least_trained(tune_controller)
        if chosen is not None or not self._synch:
            return chosen
        trials = tune_controller.get_trials()
        waiting = [t for t in trials if t.status in (Trial.PENDING, Trial.PAUSED)]
        if not waiting or any(t.status == Trial.RUNNING for t in trials):
            return None  # done, or a running trial has yet to reach the meeting
        earliest = min(self._trial_state[t].last_train_time for t in waiting)
        interval = int(self._pbt["perturbation_interval"])
        self._next_perturbation_sync = earliest - earliest % interval + interval
        return self._least_trained(tune_controller)

    def _least_trained(self, tune_controller: Any) -> Any:
        """Ray's candidates (every waiting trial; in synchronous mode those short of the
        meeting) and its choice, the one that has trained least, with ties going to the trial
        that last reported longest ago, not (as Ray) to the one added first. A bottom trial
        that clones takes its donor's step, where the others wait: with fewer trial slots than
        trials, Ray chose the first-added trial again and again when it was the one cloning,
        each time ranked last again a segment on, while the others never ran on (seen with one
        slot: quick-pbt, --cpus-per-trial 2 on 2 cores)."""
        waiting = [t for t in tune_controller.get_trials()
                   if t.status in (Trial.PENDING, Trial.PAUSED)
                   and (not self._synch or self._trial_state[t].last_train_time
                        < self._next_perturbation_sync)]
        return min(waiting, default=None, key=lambda t: (self._trial_state[t].last_train_time,
                                                          self._last_report.get(t, 0)))

    def _note_progress(self, state: Any, step: int, interval: int) -> None:
        """Record the last perturbation step the trial has reached, reported or not. A trial
        restored from its own checkpoint at a perturbation step reports from the step after
        it: Ray alone never learns it got there, and synchronous mode waits for it forever.
        A trial that passed a perturbation step (or reached its last) without being scored
        there is left out of the ranking until it is: its score is of an older model."""
        reached = step if step >= self._steps else step - step % interval
        if reached > state.last_train_time:
            state.last_train_time = reached
            if reached != step or step >= self._steps:
                state.last_score = None

    def _save_trial_state(self, state: Any, time: int, result: dict, trial: Any) -> float:
        """Ray's bookkeeping where it scores a trial, and the two measures beside the score:
        `pareto` ranks by them, and exactly when `last_score` is set (not None)."""
        self._measures[trial] = objectives.signals(result, self._pbt["select_on"], self._task)
        return super()._save_trial_state(state, time, result, trial)

    def _ranking(self, family: str) -> list[list[Any]]:
        """The family's unfinished trials scored at the last perturbation step they reached
        (`last_score` not None), best first: one group by score (`scalar`), or the fronts in
        spread order of their measures normalised in the study's box (`pareto`)."""
        scored = {t: s.last_score for t, s in self._trial_state.items()
                  if self._family(t) == family and not t.is_finished()
                  and s.last_score is not None}
        if self._pbt["exploit"] == "pareto":
            unmeasured = (math.nan, math.nan)
            return pbt.pareto_fronts({t: self._scale.normalised(*self._measures.get(t, unmeasured))
                                      for t in scored})
        return [pbt.scalar_order(scored)]

    def _families(self) -> set[str]:
        return {self._family(t) for t in self._trial_state}

    def _quantiles(self) -> tuple[list, list]:
        """(bottom, top): each family's own quantiles (`search_spaces.pbt.quantiles`), joined.
        Ray's synchronous mode handles every top trial before any bottom one, so each family's
        top trials have saved this round's checkpoint before its bottom ones clone them."""
        lower, upper = [], []
        for family in self._families():
            bottom, top = pbt.quantiles(self._ranking(family),
                                        float(self._pbt["quantile_fraction"]))
            lower += bottom
            upper += top
        return lower, upper

    def _checkpoint_or_exploit(self, trial: Any, tune_controller: Any, upper_quantile: list,
                               lower_quantile: list) -> None:
        """Ray's rule within the trial's family: a bottom trial clones a top one of its own."""
        family = self._family(trial)
        super()._checkpoint_or_exploit(
            trial, tune_controller, [t for t in upper_quantile if self._family(t) == family],
            [t for t in lower_quantile if self._family(t) == family])

    def _write_state(self, tune_controller: Any, trial: Any) -> None:
        """pbt_state.json; each trial's rank is where it stands now, or, for one not ranked
        now (finished, or not yet scored at its latest perturbation step), where it last
        stood."""
        for family in self._families():
            self._ranks.update(pbt.ranks(self._ranking(family), self._pbt["exploit"]))
        state = {
            "trials": {t.trial_id: {"last_perturbation_time": s.last_perturbation_time,
                                    "last_train_time": s.last_train_time,
                                    "last_score": s.last_score,
                                    "measures": self._measures.get(t),
                                    "rank": self._ranks.get(t)}
                       for t, s in self._trial_state.items()},
            "rng": list(self._rng.getstate()),
            "next_sync": self._next_perturbation_sync,
        }
        experiment.write_atomic(Path(trial.local_experiment_path) / STATE_FILE,
                                json.dumps(state))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """`resume` unpickles the scheduler Tune saved at the start (tuner.pkl): one saved
        before `exploit` and `select_on` existed ranked by score on the test measures, and
        kept no measures or ranks; one saved before datasets scored dSprites' primary task."""
        self.__dict__.update({"_measures": {}, "_ranks": {}, "_scale": None,
                              "_task": primary_task(DSPRITES.name), "_reports": 0,
                              "_last_report": {}}, **state)
        self._pbt = {"exploit": "scalar", "select_on": "test", **self._pbt}
