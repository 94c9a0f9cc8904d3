"""Population-based training of λ1 (WAEs) or β (β-VAE): the seed's open question, whether the
penalty could be set *during* training, as a search.

A population of packs per family trains side by side. At every `perturbation_interval` steps
each trial is evaluated (a cheaper, interim evaluation: `train.interim_*`) and ranked as
`[pbt] exploit` says (below); within its family, a trial in the bottom `quantile_fraction`
copies the weights (and Adam state) of one in the top fraction and continues with a perturbed
value:

    with probability resample_probability: log-uniform in [max(min, floor), max]
    otherwise: max(value, floor) × factor or ÷ factor (equal odds), then clipped to
               [min, max]; a result below `floor` becomes the family's `min` (λ1 = 0 is
               reachable and leavable: 0 perturbs as if it were `floor`)

How a family is ranked (`exploit`), from the trial's latest evaluation (means over members)
of the measures `select_on` names (`trainables.objectives.signals`), d being the
disentanglement on the study's primary task (dSprites: `disentanglement_5var`):
    scalar  by the objective (higher is better):
            constrained  d − max(0, recon / max_recon_test − 1)
                         (the adaptive search's constrained score)
            weighted     d − recon / recon_scale
    pareto  MO-PBT (Dushatskiy et al., ICML 2023): non-dominated fronts of (d ↑, recon ↓),
            each front in greedy spread order, both measures normalised in the study's box
            (`Scale`); the order is front 1, then front 2, ...
Either way the bottom ceil(n × quantile_fraction) (at most half) clone the top as many.

A cloned trial keeps its own members' seeds (its batches and noise restart from streams
derived from its seeds and the step: clones do not share random numbers). Ray's scheduler
with these rules is `search_spaces.pbt_scheduler`; this module is the rules as plain data and
functions (no Ray), for the spec and the report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from search_spaces.grids import param_bounds
from search_spaces.seeds import trial_seeds

K = TypeVar("K", bound=Hashable)  # what a ranking orders: trials, or names in the tests
Point = tuple[float, float]  # (disentanglement ↑, reconstruction error ↓), normalised


def initial_values(pbt: dict[str, Any], family: str) -> list[float]:
    """The population's starting values: log-spaced from max(min, floor) to max, with `min`
    itself first when it lies below the floor (e.g. λ1 = 0; a population of two: min, max)."""
    low, high = param_bounds(pbt, family)
    n, floor = int(pbt["population"]), float(pbt["floor"])
    if low >= floor:
        return _rounded(np.geomspace(low, high, n))
    return [low, *(_rounded(np.geomspace(floor, high, n - 1)) if n > 2 else [high])]


def _rounded(values: np.ndarray) -> list[float]:
    return [float(f"{v:.4g}") for v in values]


def expand(spec: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The initial population as trial configs, family by family, in the same order every
    time; trial i's members get their seeds from `search_spaces.seeds.trial_seeds`."""
    study, pbt = spec["study"], spec["pbt"]
    points = [(family, value) for family in pbt["families"]
              for value in initial_values(pbt, family)]
    return [
        {**spec["train"], "family": family, "value": value, "perturbable": True,
         "replicates": study["replicates"],
         "seeds": trial_seeds(study["seed"], i, study["replicates"], study["seeds"])}
        for i, (family, value) in enumerate(points)
    ]


def scalar_order(scores: Mapping[K, float | None]) -> list[K]:
    """The finitely scored keys, best first (`scalar` exploit)."""
    ascending = sorted((k for k, v in scores.items() if v is not None and math.isfinite(v)),
                       key=lambda k: scores[k])
    return ascending[::-1]


@dataclass(frozen=True)
class Scale:
    """The study's box (`analysis.box.Box` gives the numbers: search_spaces does not import
    analysis) as `pareto` exploit reads it: both measures in units of the box, so that the
    spread's distances weigh disentanglement and reconstruction alike in every study."""

    floor: float  # the primary task's disentanglement floor (chance: dSprites' 5var, 1/5)
    recon_reference: float  # nats

    def normalised(self, d: float, recon: float) -> Point:
        """(d − floor) / (1 − floor), recon / recon_reference."""
        return (d - self.floor) / (1.0 - self.floor), recon / self.recon_reference


def pareto_fronts(points: Mapping[K, Point]) -> list[list[K]]:
    """The non-dominated fronts of the finite points, best first, each in `spread_order`
    (`pareto` exploit). Equal points share a front; a non-finite point (not measured) is left
    out. The sort is Optuna's (imported here: optuna stays out of the command line's start-up;
    private, so tests/test_dependency_contracts.py checks it)."""
    from optuna.study._multi_objective import _fast_non_domination_rank

    keys = [k for k, point in points.items() if all(math.isfinite(v) for v in point)]
    if not keys:
        return []
    losses = np.array([(-points[k][0], points[k][1]) for k in keys])  # both minimised
    front_of = _fast_non_domination_rank(losses)
    return [spread_order([k for k, f in zip(keys, front_of, strict=True) if f == front], points)
            for front in range(int(front_of.max()) + 1)]


def spread_order(front: list[K], points: Mapping[K, Point]) -> list[K]:
    """MO-PBT's greedy order of one front, so that the top of a population spans the front
    rather than crowding one end: the most disentangled point first, then again and again the
    point whose Euclidean distance to the nearest point already taken is largest (ties: the
    earlier in `front`)."""
    order = [max(front, key=lambda k: points[k][0])]
    left = [k for k in front if k != order[0]]
    while left:
        order.append(max(left, key=lambda k: min(math.dist(points[k], points[t]) for t in order)))
        left.remove(order[-1])
    return order


def quantiles(ranking: list[list[K]], fraction: float) -> tuple[list[K], list[K]]:
    """(bottom, top) of one population ranked best first (`scalar_order` as one group, or
    `pareto_fronts`), Ray's rule: ceil(n × fraction) keys each, at most half the population;
    none while fewer than two are ranked. Both lists run from worse to better."""
    worst_first = [k for group in ranking for k in group][::-1]
    if len(worst_first) <= 1:
        return [], []
    k = min(math.ceil(len(worst_first) * fraction), len(worst_first) // 2)
    return worst_first[:k], worst_first[len(worst_first) - k:]


def ranks(ranking: list[list[K]], exploit: str) -> dict[K, dict[str, int]]:
    """Where each key of a ranking stands, from 1, for pbt_state.json and the report: its
    position by score (`scalar`), or its front and its position in that front's spread order
    (`pareto`)."""
    return {k: {"front": front, "position": position} if exploit == "pareto"
            else {"position": position}
            for front, group in enumerate(ranking, 1) for position, k in enumerate(group, 1)}


def perturb(value: float, family: str, pbt: dict[str, Any], rng: random.Random) -> float:
    """A bottom trial's new value, explored from the top trial's `value` (module docstring)."""
    low, high = param_bounds(pbt, family)
    floor, factor = float(pbt["floor"]), float(pbt["perturbation_factor"])
    if rng.random() < float(pbt["resample_probability"]):
        start = max(low, floor)
        new = math.exp(rng.uniform(math.log(start), math.log(high)))
    else:
        new = max(value, floor) * (factor if rng.random() < 0.5 else 1.0 / factor)
        if new < floor:
            new = low if low < floor else floor
    return float(f"{min(max(new, low), high):.6g}")
