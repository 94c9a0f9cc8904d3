"""Inference on front hypervolumes, with the replicate as the unit of replication.

Replicates are independent seeds, so for each replicate index r the models (value, r) of a
family form one single-seed sweep of its values; the hypervolume of that sweep's front,
HV_f(r), is one independent draw of the family's hypervolume. The estimand is E[HV_f]:

    per family   the mean of HV_f(r) over r, with a Student-t interval
    two families the difference of the means, with Welch's interval (independent seeds) or
                 the paired t-interval (`[study] seeds = "paired"`: replicate r of every grid
                 point shares its seeds, so HV_a(r) and HV_b(r) are paired), and an exact
                 permutation p-value (label swaps; sign flips when paired)
    a verdict    only where the test rejects at 5 % after Holm's correction over every test
                 the report states

The simulation in tests/analysis/test_inference.py checks the intervals' coverage and the
test's type I error against known truths.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special  # not scipy.stats: 0.9 s to import, for one quantile function

LEVEL = 0.95
ALPHA = 0.05
EXACT_LIMIT = 200_000  # beyond this many permutations, a seeded Monte Carlo sample of them
MONTE_CARLO = 100_000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


def t_quantile(q: float, df: float) -> float:
    """Student's t quantile: `scipy.stats.t.ppf(q, df)`, which computes it by this function."""
    return float(special.stdtrit(df, q))


def t_interval(values: np.ndarray, level: float = LEVEL) -> Interval:
    """The mean and its Student-t interval; NaN bounds with fewer than two values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


def difference_interval(a: np.ndarray, b: np.ndarray, paired: bool,
                        level: float = LEVEL) -> Interval:
    """mean(a) − mean(b) with Welch's interval, or the paired t-interval of a − b (a[i] and
    b[i] share replicate i's seeds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        return t_interval(a - b, level)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2:
        return Interval(estimate, math.nan, math.nan, min(a.size, b.size))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(estimate, estimate, estimate, min(a.size, b.size))
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return Interval(estimate, estimate - half, estimate + half, min(a.size, b.size))


def permutation_p(a: np.ndarray, b: np.ndarray, paired: bool, seed: int = 0) -> float:
    """Two-sided p-value of mean(a) − mean(b) under exchangeability: every relabelling of
    the pooled values (or every sign flip of the paired differences), exact up to
    EXACT_LIMIT permutations, else a seeded Monte Carlo sample (observed one included)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        d = a - b
        d = d[np.isfinite(d)]
        if d.size == 0:
            return math.nan
        if 2 ** d.size <= EXACT_LIMIT:
            signs = _all_signs(d.size)
        else:
            rng = np.random.default_rng(seed)
            signs = np.vstack([np.ones(d.size), rng.choice((1.0, -1.0), (MONTE_CARLO, d.size))])
        means = signs @ d / d.size
        observed = abs(d.mean())
    else:
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size == 0 or b.size == 0:
            return math.nan
        pooled, n = np.concatenate([a, b]), a.size + b.size
        if math.comb(n, a.size) <= EXACT_LIMIT:
            in_a = _all_splits(n, a.size)
        else:
            rng = np.random.default_rng(seed)
            in_a = np.zeros((MONTE_CARLO + 1, n), dtype=bool)
            in_a[0, : a.size] = True
            for row in in_a[1:]:
                row[rng.choice(n, a.size, replace=False)] = True
        sums = in_a @ pooled
        means = sums / a.size - (pooled.sum() - sums) / b.size
        observed = abs(a.mean() - b.mean())
    return float(np.mean(np.abs(means) >= observed - 1e-12 * max(1.0, observed)))


def smallest_p(n_a: int, n_b: int, paired: bool) -> float:
    """The smallest p `permutation_p` can return with these sample sizes: 2 / (the number of
    relabellings) when it is exact (the observed one and its mirror image are the only ones
    as extreme), 1 / (the Monte Carlo sample) otherwise."""
    count = 2**n_a if paired else math.comb(n_a + n_b, n_a)
    return 2 / count if count <= EXACT_LIMIT else 1 / (MONTE_CARLO + 1)


def fewest_replicates(n_tests: int, paired: bool, alpha: float = ALPHA) -> int:
    """The fewest replicates per family with which the smallest possible p, multiplied by
    `n_tests` (Holm's first step), falls below `alpha`."""
    r = 2
    while n_tests * smallest_p(r, r, paired) >= alpha:
        r += 1
    return r


@functools.cache
def _all_signs(n: int) -> np.ndarray:
    """Every ±1 vector of length n, (2^n, n)."""
    return np.array(list(itertools.product((1.0, -1.0), repeat=n)))


@functools.cache
def _all_splits(n: int, k: int) -> np.ndarray:
    """Every choice of k of n positions as a (C(n, k), n) mask."""
    picks = np.array(list(itertools.combinations(range(n), k)))
    mask = np.zeros((len(picks), n), dtype=bool)
    mask[np.arange(len(picks))[:, None], picks] = True
    return mask


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order (NaN stays NaN, not counted)."""
    finite = [(p, i) for i, p in enumerate(pvalues) if np.isfinite(p)]
    adjusted = [math.nan] * len(pvalues)
    running, m = 0.0, len(finite)
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
