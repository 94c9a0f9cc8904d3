"""The hypervolume inference checked by simulation against known truths: synthetic families
(a parametric front per value, replicate noise), a few hundred simulated studies at R = 5 and
R = 10. The 95 % intervals must cover the true expected hypervolume in 92-98 % of studies,
and two identical families must be called different in at most 5 % (+ Monte Carlo error)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import inference
from analysis.pareto import hypervolumes

REFERENCE, FLOOR = 300.0, 0.2
VALUES = np.linspace(0.0, 1.0, 6)  # a family's grid, as a position along its front
STUDIES = 400


def sweep_hypervolumes(rng: np.random.Generator, n: int, shift: float = 0.0,
                       noise: np.ndarray | None = None) -> np.ndarray:
    """HV_f(r) of n single-seed sweeps: at value v a model scores d = 0.35 + 0.5 v + shift
    and recon r = 80 + 150 v, each with replicate noise (or the given standard normals)."""
    z = rng.standard_normal((n, VALUES.size, 2)) if noise is None else noise
    d = 0.35 + 0.5 * VALUES + shift + 0.06 * z[..., 0]
    r = 80.0 + 150.0 * VALUES + 25.0 * z[..., 1]
    return hypervolumes(d, r, REFERENCE, FLOOR)


@pytest.fixture(scope="module")
def truth() -> float:
    """E[HV_f] by a large simulation (its Monte Carlo error is ~1e-4 of the value)."""
    return float(sweep_hypervolumes(np.random.default_rng(123), 40_000).mean())


@pytest.mark.slow
@pytest.mark.parametrize("replicates", [5, 10])
def test_family_intervals_cover_the_expected_hypervolume(truth, replicates):
    rng = np.random.default_rng(replicates)
    covered = 0
    for _ in range(STUDIES):
        found = inference.t_interval(sweep_hypervolumes(rng, replicates))
        covered += found.low <= truth <= found.high
    assert 0.92 <= covered / STUDIES <= 0.98, covered / STUDIES


@pytest.mark.slow
@pytest.mark.parametrize("replicates", [5, 10])
@pytest.mark.parametrize("paired", [False, True])
def test_difference_intervals_cover_and_identical_families_are_rarely_called_different(
        replicates, paired):
    """Family b is family a shifted by +0.03 in disentanglement (so the true difference is
    known by simulation) or identical to it; paired seeds share 70 % of their noise."""
    rng = np.random.default_rng(100 + replicates + paired)
    shifted = sweep_hypervolumes(np.random.default_rng(7), 40_000, shift=0.03).mean()
    same = sweep_hypervolumes(np.random.default_rng(8), 40_000).mean()
    true_difference = shifted - same
    covered = rejected = 0
    for _ in range(STUDIES):
        za = rng.standard_normal((replicates, VALUES.size, 2))
        zb = rng.standard_normal(za.shape)
        if paired:
            zb = 0.7 * za + math.sqrt(1 - 0.7**2) * zb
        a = sweep_hypervolumes(rng, replicates, noise=za)
        b = sweep_hypervolumes(rng, replicates, shift=0.03, noise=zb)
        found = inference.difference_interval(b, a, paired)
        covered += found.low <= true_difference <= found.high
        twin = sweep_hypervolumes(rng, replicates, noise=zb)
        rejected += inference.permutation_p(a, twin, paired) < inference.ALPHA
    assert 0.92 <= covered / STUDIES <= 0.98, covered / STUDIES
    monte_carlo = 2 * math.sqrt(0.05 * 0.95 / STUDIES)
    assert rejected / STUDIES <= inference.ALPHA + monte_carlo, rejected / STUDIES


def test_permutation_p_values_exact():
    # all C(4, 2) = 6 relabellings: |difference| 2 (observed) twice, 1 four times... of 6
    assert inference.permutation_p([3.0, 4.0], [1.0, 2.0], paired=False) == pytest.approx(2 / 6)
    # sign flips of (1, 1, 1): only all-plus and all-minus reach |mean| 1
    assert inference.permutation_p([2.0, 2.0, 2.0], [1.0, 1.0, 1.0], paired=True) == \
        pytest.approx(2 / 8)
    assert inference.permutation_p([1.0, 2.0], [1.0, 2.0], paired=False) == 1.0


def test_t_and_welch_intervals_closed_form():
    found = inference.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) × s / √n
    assert (found.estimate, found.low, found.high) == pytest.approx((2.0, 2 - half, 2 + half))
    assert math.isnan(inference.t_interval([1.0]).low)
    welch = inference.difference_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], paired=False)
    assert welch.estimate == 0.0 and welch.low == pytest.approx(-welch.high)
    paired = inference.difference_interval([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], paired=True)
    assert (paired.estimate, paired.low, paired.high) == (1.0, 1.0, 1.0)


def test_holm_steps_down():
    assert inference.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx(
        [0.03, 0.06, 0.06, math.nan], nan_ok=True)


@pytest.mark.parametrize(("n", "paired", "expected"), [(3, False, 0.1), (4, False, 2 / 70),
                                                       (3, True, 0.25), (5, True, 2 / 32)])
def test_smallest_p_is_the_p_of_the_most_separated_samples(n, paired, expected):
    """Two samples apart by far more than their spread reach the floor, and only it."""
    a, b = np.arange(n) + 100.0, np.arange(n) * 1.5
    assert inference.smallest_p(n, n, paired) == pytest.approx(expected)
    assert inference.permutation_p(a, b, paired) == pytest.approx(expected)


def test_fewest_replicates_for_a_verdict_under_holm():
    assert inference.fewest_replicates(1, paired=False) == 4  # 2/70 < 0.05 <= 2/20
    assert inference.fewest_replicates(42, paired=False) == 7  # 2/3432 < 0.05/42 <= 2/924
    assert inference.fewest_replicates(2, paired=True) == 7  # 2/128 < 0.025 <= 2/64


@pytest.mark.parametrize(("q", "df", "expected"), [
    (0.975, 1, 12.706204736174705), (0.975, 4, 2.7764451051977987),
    (0.995, 9, 3.2498355415921263), (0.975, math.inf, 1.959963984540054)])
def test_t_quantiles_are_students(q, df, expected):
    """Closed-form table values (and the normal's at infinite df); a Welch df is not whole."""
    assert inference.t_quantile(q, df) == pytest.approx(expected, rel=1e-12)
    assert inference.t_quantile(0.975, 7.5) == pytest.approx(2.333039626864974, rel=1e-9)
