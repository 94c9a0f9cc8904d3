"""Ray Tune's asynchronous population-based training with the project's rules
(`search_spaces.pbt`): populations per family, the scalarised objective, clones keep their
own seeds, perturbations only at multiples of the interval (the checkpoint steps), none at
a trial's last step.

The scheduler's per-trial state (last perturbation step, last score), its random state and
(synchronous mode) the step where the population meets next are saved to
`<experiment>/pbt_state.json` at every perturbation step and read back when `resume` re-adds
the trials, so a resumed study neither perturbs twice nor forgets scores. `[pbt].seed` seeds
the perturbations; which top trial a bottom one clones is Ray's random choice, and (unless
`[pbt] synch`) trials interleave asynchronously: a PBT study is not bitwise repeatable.

Ray offers no public hook for ranking within families, keeping a clone's seeds or restoring
the scheduler's bookkeeping: `_quantiles`, `_checkpoint_or_exploit` and `_get_new_config` are
overridden and `_trial_state` / `_next_perturbation_sync` read and written, under the pinned
Ray minor; tests/test_dependency_contracts.py fails naming the pin when one of them changes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from search_spaces.pbt import perturb, quantiles
from trainables import experiment, objectives
from trainables.config import trial_settings

OBJECTIVE_KEY = "pbt_objective"  # what the scheduler ranks by (added to each result it sees)
STATE_FILE = "pbt_state.json"


class PBTScheduler(PopulationBasedTraining):
    """Ray Tune's asynchronous PBT with the project's rules: populations per family, the
    scalarised objective, clones keep their own seeds, no perturbation at a trial's last
    step, state saved beside the experiment for `resume`."""

    def __init__(self, pbt: dict[str, Any], steps: int) -> None:
        self._pbt = dict(pbt)
        self._steps = int(steps)
        self._rng = random.Random(int(pbt["seed"]))
        self._saved: dict[str, Any] | None = None  # pbt_state.json, read at the first add
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
        new_value = perturb(float(settings["value"]), settings["family"], self._pbt, self._rng)
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
            self._saved = _read_state(Path(trial.local_experiment_path) / STATE_FILE)
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

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        step = int(result.get("step", 0))
        interval = int(self._pbt["perturbation_interval"])
        self._note_progress(self._trial_state[trial], step, interval)
        if step >= self._steps:
            return TrialScheduler.CONTINUE  # a last step is never perturbed: trials end as is
        if step % interval:
            # only at the checkpoint steps: a trial restored from a checkpoint after a resume
            # does not report that step again, and Ray would perturb it at its next report
            return TrialScheduler.CONTINUE
        scored = {**result, OBJECTIVE_KEY: objectives.score_for(result, self._pbt)}
        before = self._trial_state[trial].last_perturbation_time
        decision = super().on_trial_result(tune_controller, trial, scored)
        if self._trial_state[trial].last_perturbation_time != before:
            self._write_state(tune_controller, trial)
        return decision

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

    def _quantiles(self) -> tuple[list, list]:
        """(bottom, top): each family's own quantiles (`search_spaces.pbt.quantiles`), joined.
        Ray's synchronous mode handles every top trial before any bottom one, so each family's
        top trials have saved this round's checkpoint before its bottom ones clone them."""
        lower, upper = [], []
        for family in {self._family(t) for t in self._trial_state}:
            scores = {t: s.last_score for t, s in self._trial_state.items()
                      if self._family(t) == family and not t.is_finished()}
            bottom, top = quantiles(scores, float(self._pbt["quantile_fraction"]))
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
        state = {
            "trials": {t.trial_id: {"last_perturbation_time": s.last_perturbation_time,
                                    "last_train_time": s.last_train_time,
                                    "last_score": s.last_score}
                       for t, s in self._trial_state.items()},
            "rng": list(self._rng.getstate()),
            "next_sync": self._next_perturbation_sync,
        }
        experiment.write_atomic(Path(trial.local_experiment_path) / STATE_FILE,
                                json.dumps(state))


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
