"""Pareto fronts against brute force, hypervolumes against closed forms, the per-replicate
table in a fixed box."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import inference
from analysis.box import Box
from analysis.pareto import (
    compare,
    domination_shares,
    hypervolume,
    hypervolume_table,
    nondominated_mask,
    pareto_rows,
)


def brute_force_mask(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    n = len(d)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if d[j] >= d[i] and r[j] <= r[i] and (d[j] > d[i] or r[j] < r[i]):
                keep[i] = False
    return keep


def brute_force_hypervolume(d: np.ndarray, r: np.ndarray, reference: float) -> float:
    """Union of the rectangles [r, reference] × [0, d], by coordinate compression."""
    xs = np.unique(np.r_[np.minimum(r, reference), reference])
    area = 0.0
    for left, right in zip(xs[:-1], xs[1:], strict=True):
        heights = [di for di, ri in zip(d, r, strict=True) if ri <= left]
        area += (right - left) * max(heights, default=0.0)
    return area


# Small integer grids force many exact ties in both coordinates and duplicate points.
points = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=0, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(points)
def test_nondominated_mask_matches_brute_force_with_ties(pts):
    d = np.array([p[0] / 5 for p in pts], dtype=float)
    r = np.array([10.0 * p[1] for p in pts], dtype=float)
    assert np.array_equal(nondominated_mask(d, r), brute_force_mask(d, r))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 100)), max_size=30))
def test_nondominated_mask_matches_brute_force_on_floats(pts):
    d = np.array([p[0] for p in pts], dtype=float)
    r = np.array([p[1] for p in pts], dtype=float)
    assert np.array_equal(nondominated_mask(d, r), brute_force_mask(d, r))


def test_equal_points_both_stay_and_nan_is_never_on_the_front():
    d = np.array([0.9, 0.9, np.nan, 0.5])
    r = np.array([10.0, 10.0, 1.0, 20.0])
    assert nondominated_mask(d, r).tolist() == [True, True, False, False]


def test_hypervolume_single_point():
    assert hypervolume([0.5], [10.0], 20.0) == pytest.approx(0.5 * 10)


def test_hypervolume_two_points():
    # 0.5 over [10, 15), then 0.8 over [15, 20)
    assert hypervolume([0.5, 0.8], [10.0, 15.0], 20.0) == pytest.approx(0.5 * 5 + 0.8 * 5)


def test_hypervolume_staircase_closed_form():
    n = 10
    d = np.arange(1, n + 1) / n  # step k at recon k has height k / n
    r = np.arange(1, n + 1, dtype=float)
    # Σ_k (k / n) · 1 over [k, k + 1) for k = 1..n, the last step reaching the reference n + 1
    assert hypervolume(d, r, n + 1.0) == pytest.approx((n + 1) / 2)


def test_hypervolume_ignores_dominated_points_and_points_beyond_the_reference():
    assert hypervolume([0.5, 0.4, 1.0], [10.0, 12.0, 25.0], 20.0) == pytest.approx(5.0)
    assert hypervolume([], [], 20.0) == 0.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 100)), max_size=25),
       st.floats(1, 120))
def test_hypervolume_matches_brute_force(pts, reference):
    d = np.array([p[0] for p in pts], dtype=float)
    r = np.array([p[1] for p in pts], dtype=float)
    expected = brute_force_hypervolume(d, r, reference)
    assert hypervolume(d, r, reference) == pytest.approx(expected, abs=1e-9)
    front = nondominated_mask(d, r)
    assert hypervolume(d[front], r[front], reference) == pytest.approx(expected, abs=1e-9)


def table(rows: list[tuple]) -> pd.DataFrame:
    """(family, value, trial, replicate, calculation, d4, recon) rows in the results layout."""
    frame = pd.DataFrame(rows, columns=[
        "family", "value", "trial_id", "replicate", "calculation", "disentanglement_4var",
        "recon_test",
    ])
    frame["param"] = np.where(frame["family"] == "beta_vae", "beta", "lambda1")
    frame["disentanglement_5var"] = frame["disentanglement_4var"]
    frame["recon_train"] = frame["recon_test"]
    frame["diverged"] = False
    return frame


def test_pareto_rows_per_family_and_all():
    results = table([
        ("beta_vae", 1.0, "a", 0, 0, 0.9, 100.0),
        ("beta_vae", 1.0, "a", 0, 1, 0.8, 100.0),  # same model, lower calculation: dominated
        ("beta_vae", 3.0, "b", 0, 0, 0.6, 50.0),
        ("wae_gaussian", 1.0, "c", 0, 0, 0.95, 60.0),
        ("wae_gaussian", 2.0, "d", 0, 0, 0.5, 40.0),
    ])
    fronts = pareto_rows(results, "4var")
    got = {f: sorted(g["disentanglement_4var"]) for f, g in fronts.groupby("front")}
    assert got == {"beta_vae": [0.6, 0.9], "wae_gaussian": [0.5, 0.95],
                   "all": [0.5, 0.6, 0.95]}
    shares = domination_shares(fronts, "4var")
    assert shares.at["beta_vae", "wae_gaussian"] == pytest.approx(0.5)  # only 0.9 @ 100
    assert shares.at["wae_gaussian", "beta_vae"] == pytest.approx(0.0)


def test_diverged_rows_never_enter_a_front():
    results = table([
        ("beta_vae", 1.0, "a", 0, 0, 0.5, 100.0),
        ("beta_vae", 1.0, "a", 1, 0, 0.99, 10.0),
    ])
    results.loc[1, "diverged"] = True
    assert pareto_rows(results, "4var")["replicate"].tolist() == [0, 0]  # beta_vae and all


def test_hypervolume_table_is_the_mean_over_single_seed_sweeps_in_a_fixed_box():
    rng = np.random.default_rng(1)
    rows = [
        (family, value, f"{family}{value}", rep, calc, rng.uniform(0.5, 1), rng.uniform(20, 200))
        for family in ("beta_vae", "wae_gaussian")
        for value in (1.0, 2.0)
        for rep in range(4)
        for calc in range(3)
    ]
    results = table(rows)
    box = Box(300.0, 0.25)
    hv, per_replicate = hypervolume_table(results, "4var", box)
    assert set(per_replicate) == {"beta_vae", "wae_gaussian", "all"}
    beta = results[results["family"] == "beta_vae"]
    by_hand = [hypervolume(g["disentanglement_4var"], g["recon_test"], 300.0, 0.25) / (300 * 0.75)
               for _, g in beta.groupby("replicate")]  # sweep r: both values' rows of replicate r
    assert per_replicate["beta_vae"] == pytest.approx(by_hand)
    row = hv.set_index("front").loc["beta_vae"]
    interval = inference.t_interval(np.array(by_hand))
    assert (row["mean_norm"], row["ci_low_norm"], row["ci_high_norm"]) == pytest.approx(
        (interval.estimate, interval.low, interval.high))
    assert row["ci_low_norm"] < row["mean_norm"] < row["ci_high_norm"]  # an interval, not a
    assert row["pooled_norm"] >= max(by_hand)  # fragility: the pooled front beats every sweep
    assert (row["n_replicates"], row["recon_reference"], row["floor"]) == (4, 300.0, 0.25)
    assert hv.set_index("front").at["all", "n_models"] == 16
    assert (hypervolume_table(results, "4var", Box(600.0))[0]["recon_reference"] == 600).all()
    pair = compare(hv, per_replicate, paired=False)[0]
    assert pair["difference_ci_low_norm"] <= pair["difference_norm"] <= \
        pair["difference_ci_high_norm"]
    assert 0 < pair["p_value"] <= 1 and pair["interval"] == "Welch"
    assert compare(hv, per_replicate, paired=True)[0]["interval"] == "paired t"


def test_a_box_floor_and_reference_are_fixed_not_from_the_data():
    assert Box(200.0).floor("4var") == 0.25 and Box(200.0).floor("5var") == 0.2
    assert Box(200.0, 0.1).area("5var") == pytest.approx(180.0)
    assert Box.from_spec({}) == Box(250.0, "chance")
    assert Box.from_spec({"report": {"recon_reference": 90.0}}).recon_reference == 90.0
    # a point at the floor adds nothing; above it, the height is the excess over the floor
    assert hypervolume([0.2], [0.0], 100.0, floor=0.2) == 0.0
    assert hypervolume([0.7], [50.0], 100.0, floor=0.2) == pytest.approx(0.5 * 50)


def test_a_boxs_chance_floor_is_of_its_studys_tasks():
    """Chance is one over the factors a task votes on, for the study's dataset (dSprites for
    a study written before datasets); the description names the study's floors."""
    noshape = Box.from_spec({"train": {"dataset": "dsprites_noshape"}})
    assert noshape == Box(250.0, "chance", "dsprites_noshape") != Box(250.0)
    assert noshape.floor("4var") == 0.25 and noshape.scaled(2.0).dataset == "dsprites_noshape"
    with pytest.raises(KeyError):
        noshape.floor("5var")  # not one of its tasks
    assert "chance (1/4) to 1" in noshape.describe()
    assert "chance (1/4, 1/5) to 1" in Box(250.0).describe()


def test_empty_results_give_empty_tables():
    empty = table([])
    assert pareto_rows(empty, "4var").empty
    assert hypervolume_table(empty, "4var", Box(250.0))[0].empty
