"""Population-based training of λ1 (WAEs) or β (β-VAE): the seed's open question, whether the
penalty could be set *during* training, as a search.

A population of packs per family trains side by side. At every `perturbation_interval` steps
each trial is evaluated (a cheaper, interim evaluation: `train.interim_*`) and scored with the
`[pbt]` objective; within its family, a trial in the bottom `quantile_fraction` copies the
weights (and Adam state) of one in the top fraction and continues with a perturbed value:

    with probability resample_probability: log-uniform in [max(min, floor), max]
    otherwise: max(value, floor) × factor or ÷ factor (equal odds), then clipped to
               [min, max]; a result below `floor` becomes the family's `min` (λ1 = 0 is
               reachable and leavable: 0 perturbs as if it were `floor`)

The objective (higher is better), from the trial's latest evaluation (means over members):
    constrained  disentanglement_5var − max(0, recon_test / max_recon_test − 1)
                 (the adaptive search's constrained score)
    weighted     disentanglement_5var − recon_test / recon_scale

A cloned trial keeps its own members' seeds (its batches and noise restart from streams
derived from its seeds and the step: clones do not share random numbers). Ray's scheduler
with these rules is `search_spaces.pbt_scheduler`; this module is the rules as plain data and
functions (no Ray), for the spec and the report.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from search_spaces.grids import param_bounds
from search_spaces.seeds import trial_seeds


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


def quantiles(scores: dict[Any, float], fraction: float) -> tuple[list, list]:
    """(bottom, top) of one population by score, Ray's rule: ceil(n × fraction) trials each,
    at most half the population; none while fewer than two trials have a finite score."""
    ranked = sorted((k for k, v in scores.items() if v is not None and math.isfinite(v)),
                    key=lambda k: scores[k])
    if len(ranked) <= 1:
        return [], []
    k = min(math.ceil(len(ranked) * fraction), len(ranked) // 2)
    return ranked[:k], ranked[len(ranked) - k:]


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
