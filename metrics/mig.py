"""Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it.

10,000 uniform points; each code dimension is discretised into 20 equal-width histogram bins
over its observed range; the mutual information of each (code dim, factor) pair comes from
``sklearn.metrics.mutual_info_score`` (nats); per factor, the gap between the two most
informative code dims is divided by the factor's entropy; the score is the mean over the
factors with more than one value. No deliberate difference from disentanglement_lib.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.codes import CodeTable, Encode, Plan, Sampler, latent_factors, run_plan


def mig(encode: Encode, data: Any, *, seed: int = 0, **options: Any) -> dict:
    """MIG of one model: ``{"score", "per_factor"}``. Options: ``num_train``, ``num_bins``."""
    return run_plan(plan_mig, encode, data, seed, options)


def plan_mig(sampler: Sampler, *, num_train: int = 10_000, num_bins: int = 20) -> Plan:
    """Share the ("points", "train") sample; score each member's codes of it."""
    key = sampler.points("train", num_train)
    ys = sampler.get(key).classes[:, list(latent_factors(sampler.data))]

    def score(table: CodeTable) -> list[dict]:
        return [mig_score(table.get(key, m), ys, num_bins) for m in range(table.members)]

    return Plan(keys=(key,), scorer=score)


def mig_score(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """MIG from codes (n, d) and discrete factors (n, F)."""
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least 2 code dimensions")
    from sklearn.metrics import mutual_info_score

    discrete = histogram_discretize(codes, num_bins)
    mi = mutual_information(discrete, factors)
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    top = np.sort(mi, axis=0)[::-1]
    per_factor = (top[0] - top[1]) / entropy
    return {"score": float(per_factor.mean()), "per_factor": [float(v) for v in per_factor]}


def histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin index (1..num_bins) of each value among equal-width bins over its column's range."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for i, column in enumerate(codes.T):
        out[:, i] = np.digitize(column, np.histogram(column, num_bins)[1][:-1])
    return out


def mutual_information(discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mutual information (nats), (d, F), between discrete codes (n, d) and factors (n, F)."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(f, c) for f in factors.T] for c in discrete.T])
