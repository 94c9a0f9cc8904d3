"""The adaptive search: Optuna over the family and its parameter (by default λ1 of the WAE
families, the seed's question), stored in `optuna.db` (SQLite).

Each family's parameter is searched over its own [<param>_min, <param>_max] of the
[adaptive] table, as its own Optuna parameter (`optuna_param`: the β-VAE's and β-TCVAE's β
share one, as the WAEs' λ1 do); λ1 keeps the name `value` it had when only the WAEs were
searched, so those experiments resume with their history.

Multi-objective by default: maximise disentanglement on the study's primary task (the one over
all of its dataset's latent factors, `trainables.columns.primary_task`; dSprites: 5var),
minimise the reconstruction error (the Pareto set is `study.best_trials`). The option
`objective = "constrained"` maximises that disentanglement subject to recon <= max_recon_test,
scored as `disentanglement_<task> - max(0, recon / max_recon_test - 1)` so infeasible points
rank below every feasible one that scores above the excess. Both read the measures `select_on`
names (`trainables.objectives.signal_keys`): the validation ones by default, never the test
ones the report states.

Samplers (seeded with `[adaptive].seed`): `tpe` (Optuna's TPESampler, multi-objective
capable; default), `nsga2` (NSGAIISampler), `random`.

Each suggested config carries its members' seeds (`search_spaces.seeds`), keyed by the
Optuna trial number: adaptive trials never reuse each other's seeds (unless the study asks
for paired seeds).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from search_spaces.grids import param_bounds
from search_spaces.seeds import trial_seeds
from trainables import experiment, objectives
from trainables.columns import primary_task
from trainables.config import PARAM_OF
from trainables.datasets import DSPRITES

OBJECTIVE_MODES = ["max", "min"]
CONSTRAINED_METRIC = "constrained_score"
LEGACY_STUDY_NAME = "wae-study"  # every experiment's study before names were per experiment


def storage_url(experiment_dir: Path) -> str:
    return f"sqlite:///{Path(experiment_dir).resolve() / experiment.OPTUNA_FILE}"


def study_name(experiment_dir: Path) -> str:
    """The Optuna study of an experiment, named after it (`wae-study-<name>`, so studies of
    several experiments can share one RDB storage); an older experiment's `wae-study`."""
    url = storage_url(experiment_dir)
    if (Path(experiment_dir) / experiment.OPTUNA_FILE).is_file():
        names = optuna.get_all_study_names(url)
        if names == [LEGACY_STUDY_NAME]:
            return LEGACY_STUDY_NAME
    return f"wae-study-{Path(experiment_dir).resolve().name}"


def optuna_param(family: str) -> str:
    """The Optuna parameter holding the family's value: its `PARAM_OF` name, λ1's `value`."""
    param = PARAM_OF[family]
    return "value" if param == "lambda1" else param


def suggested_point(params: dict[str, Any]) -> tuple[str | None, float | None]:
    """(family, value) of an Optuna trial's parameters."""
    family = params.get("family")
    return family, params.get(optuna_param(family)) if family in PARAM_OF else None


def make_sampler(name: str, seed: int, startup_trials: int = 10
                 ) -> optuna.samplers.BaseSampler:
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


def objective_metrics(adaptive: dict[str, Any], task: str) -> list[str]:
    """The result keys the Pareto objectives read: (`task`'s disentanglement, recon) of
    `select_on`."""
    return list(objectives.signal_keys(adaptive["select_on"], task))


def constrained_score(result: dict[str, Any], adaptive: dict[str, Any],
                      task: str) -> float | None:
    """`trainables.objectives.score`'s constrained objective on the [adaptive] table's
    measures of `task`; None before an evaluation."""
    value = objectives.score(result, "constrained", adaptive["max_recon_test"],
                             select_on=adaptive["select_on"], task=task)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class SeededSpace:
    """The search space as Optuna's define-by-run function (Ray's public `space=` callable):
    the family, then its parameter within its bounds, sampled, and the members' seeds of
    Optuna trial number n under the study's seed design returned as constants. A plain
    dataclass: the searcher is pickled."""

    bounds: tuple[tuple[str, float, float], ...]  # (family, low, high) per family searched
    study_seed: int
    replicates: int
    seed_design: str

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        family = trial.suggest_categorical("family", [f for f, _, _ in self.bounds])
        low, high = next((lo, hi) for f, lo, hi in self.bounds if f == family)
        trial.suggest_float(optuna_param(family), low, high)
        return {"seeds": trial_seeds(self.study_seed, trial.number, self.replicates,
                                     self.seed_design)}


class TrialOptunaSearch(OptunaSearch):
    """OptunaSearch whose suggestions come as every search's trial config does, under
    "trial" (Tune merges them into the [train] settings there), the family's Optuna
    parameter (`optuna_param`) as the config's `value`."""

    def suggest(self, trial_id: str) -> dict | None:
        suggested = super().suggest(trial_id)
        if not isinstance(suggested, dict):
            return suggested
        family, value = suggested_point(suggested)
        settings = {k: v for k, v in suggested.items() if k != optuna_param(family)}
        return {"trial": {**settings, "value": value}}


class ConstrainedOptunaSearch(TrialOptunaSearch):
    """The searcher on the constrained score of `task`, derived from each trial's final
    result."""

    _task = primary_task(DSPRITES.name)  # a searcher pickled before datasets: dSprites'

    def __init__(self, *args: Any, adaptive: dict[str, Any], task: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._adaptive = adaptive
        self._task = task

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result is not None:
            result = {**result, CONSTRAINED_METRIC: constrained_score(result, self._adaptive,
                                                                      self._task)}
        super().on_trial_complete(trial_id, result, error)


def make_searcher(adaptive: dict[str, Any], study: dict[str, Any],
                  experiment_dir: Path, task: str) -> OptunaSearch:
    """The Optuna searcher for an `[adaptive]` table (seeds from the `[study]` table) selecting
    on `task` (the study's primary task), its study in `<experiment>/optuna.db`, created here
    with its objectives named (for optuna-dashboard); Ray's searcher loads it."""
    constrained = adaptive["objective"] == "constrained"
    metrics = [CONSTRAINED_METRIC] if constrained else objective_metrics(adaptive, task)
    modes = ["max"] if constrained else OBJECTIVE_MODES
    sampler = make_sampler(adaptive["sampler"], adaptive["seed"],
                           adaptive["startup_trials"])
    storage = optuna.storages.RDBStorage(storage_url(experiment_dir))
    name = study_name(experiment_dir)
    created = optuna.create_study(
        storage=storage, sampler=sampler, study_name=name, load_if_exists=True,
        directions=["maximize" if m == "max" else "minimize" for m in modes])
    if created.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            created.set_metric_names(metrics)
    bounds = tuple((f, *param_bounds(adaptive, f)) for f in adaptive["families"])
    space = SeededSpace(bounds, study["seed"], study["replicates"], study["seeds"])
    common = dict(space=space, sampler=sampler, study_name=name, storage=storage)
    if constrained:
        return ConstrainedOptunaSearch(metric=CONSTRAINED_METRIC, mode="max",
                                       adaptive=dict(adaptive), task=task, **common)
    return TrialOptunaSearch(metric=metrics, mode=OBJECTIVE_MODES, **common)


def reconcile(experiment_dir: Path, finished: list[dict[str, Any]],
              adaptive: dict[str, Any], task: str) -> dict[str, int]:
    """After a crash and resume, make `optuna.db` hold one COMPLETE trial per finished Tune
    trial and nothing RUNNING.

    `finished` holds the final result of each finished Tune trial (with `family`, `value`
    and the objective metrics of `task`). An Optuna trial left RUNNING by a killed driver is
    completed from the matching Tune result when one exists (same family and value) and no
    COMPLETE trial has it yet, and marked FAIL otherwise. Call it only when no trial is
    running.
    """
    study = optuna.load_study(study_name=study_name(experiment_dir),
                              storage=storage_url(experiment_dir))
    complete = {suggested_point(t.params)
                for t in study.get_trials(deepcopy=False,
                                          states=[optuna.trial.TrialState.COMPLETE])}
    by_point = {(r["family"], float(r["value"])): r for r in finished}
    fixed = failed = 0
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        point = suggested_point(trial.params)
        result = by_point.get(point)
        values = _objective_values(result, adaptive, task) if result else None
        if values is not None and point not in complete:
            study.tell(trial.number, values)
            complete.add(point)
            fixed += 1
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    return {"completed": fixed, "failed": failed}


def _objective_values(result: dict[str, Any], adaptive: dict[str, Any],
                      task: str) -> list[float] | None:
    if adaptive["objective"] == "constrained":
        score = constrained_score(result, adaptive, task)
        return None if score is None else [score]
    values = [result.get(m) for m in objective_metrics(adaptive, task)]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]
