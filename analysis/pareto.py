"""Pareto fronts (higher disentanglement, lower test recon), hypervolumes and their bootstrap.

Fronts are taken over the healthy rows of ``results.csv`` (every replicate × calculation, like
the points of the paper's Figure 1), per family and over all families (``front = "all"``).

Hypervolume: the area dominated by a front inside the box ``disentanglement ∈ [0, 1]`` ×
``recon_test ∈ [0, reference]``, with the reference point (disentanglement 0,
recon ``reference``). The default reference is 1.1 × the largest healthy ``recon_test`` of
the study (both tasks share it, and bootstrap resamples keep it fixed), so every point
counts and all families are measured in the same box. ``hypervolume_norm`` divides by the
box area (``reference`` × 1), a fraction in [0, 1].

Bootstrap: replicates (one model = one (trial, replicate) with all its calculations) are
resampled with replacement within each (family, value); the fronts and hypervolumes of each
resample give 95 % percentile intervals. Every front sees the same resamples, so family
differences are paired.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.results import families_in, usable

BOX_MARGIN = 1.1
_HV_COLUMNS = (
    "front", "hypervolume", "hypervolume_norm", "ci_low", "ci_high", "ci_low_norm",
    "ci_high_norm", "n_front", "n_models", "reference_recon",
)


def nondominated_mask(disentanglement: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (≥ disentanglement and ≤ recon, one strict).

    O(n log n): sort by recon ascending; a point is dominated exactly when a point of strictly
    lower recon has disentanglement ≥ its own, or a point of equal recon has a strictly higher
    one. Equal points do not dominate each other (both stay). Non-finite points are never on
    the front and dominate nothing.
    """
    d = np.asarray(disentanglement, dtype=float)
    r = np.asarray(recon, dtype=float)
    mask = np.zeros(d.shape, dtype=bool)
    finite = np.flatnonzero(np.isfinite(d) & np.isfinite(r))
    if finite.size == 0:
        return mask
    order = finite[np.lexsort((-d[finite], r[finite]))]  # recon up, then disentanglement down
    d_sorted, r_sorted = d[order], r[order]
    new_group = np.r_[True, r_sorted[1:] != r_sorted[:-1]]
    group_start = np.flatnonzero(new_group)
    group_max = d_sorted[group_start]  # first of each group has the group's highest score
    best_before = np.r_[-np.inf, np.maximum.accumulate(group_max)[:-1]]  # strictly lower recon
    group = np.cumsum(new_group) - 1
    keep = (d_sorted == group_max[group]) & (d_sorted > best_before[group])
    mask[order[keep]] = True
    return mask


def hypervolume(disentanglement: np.ndarray, recon: np.ndarray, reference: float) -> float:
    """Area dominated by the points within [0, reference] recon × [0, 1] disentanglement."""
    d = np.asarray(disentanglement, dtype=float)
    r = np.asarray(recon, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r)
    order = np.argsort(r[ok], kind="mergesort")
    return float(_hypervolumes(d[ok][order][None, :], r[ok][order], reference)[0])


def _hypervolumes(d_sorted: np.ndarray, r_sorted: np.ndarray, reference: float) -> np.ndarray:
    """Hypervolume of each row of ``d_sorted`` (B, n) over shared recon ``r_sorted`` (n,).

    The area is ∫ max{d_p : r_p ≤ r} dr from 0 to ``reference``: a running max times the
    widths between consecutive recons. A score of 0 adds nothing, which is how the bootstrap
    leaves a row out without re-sorting.
    """
    if r_sorted.size == 0:
        return np.zeros(d_sorted.shape[0])
    edges = np.minimum(np.r_[r_sorted, reference], reference)
    widths = np.diff(edges)
    heights = np.maximum.accumulate(np.clip(d_sorted, 0.0, 1.0), axis=1)
    return heights @ widths


def reference_recon(results: pd.DataFrame) -> float:
    """The study's recon reference: ``BOX_MARGIN`` × the largest healthy test recon."""
    recon = usable(results)["recon_test"].to_numpy(dtype=float)
    return float(BOX_MARGIN * recon.max()) if recon.size else float("nan")


def front_names(results: pd.DataFrame) -> list[str]:
    """The families present, in the interface's order, then ``all``."""
    families = families_in(usable(results))
    return [*families, "all"] if families else []


def _members(rows: pd.DataFrame, front: str) -> np.ndarray:
    if front == "all":
        return np.ones(len(rows), dtype=bool)
    return (rows["family"] == front).to_numpy()


def pareto_rows(results: pd.DataFrame, task: str) -> pd.DataFrame:
    """The non-dominated rows of each front, with a ``front`` column (family or ``all``)."""
    score = f"disentanglement_{task}"
    rows = usable(results, task)
    parts = []
    for front in front_names(rows):
        mine = rows[_members(rows, front)]
        keep = nondominated_mask(mine[score].to_numpy(float), mine["recon_test"].to_numpy(float))
        parts.append(mine[keep].sort_values(["recon_test", score]).assign(front=front))
    if not parts:
        return pd.DataFrame(columns=[*results.columns, "front"])
    return pd.concat(parts, ignore_index=True)


def hypervolume_table(
    results: pd.DataFrame,
    task: str,
    reference: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per front: hypervolume, normalised hypervolume, 95 % bootstrap CI, front size;
    and the bootstrap draws of every front ({front: (n_boot,)}) for paired differences."""
    score = f"disentanglement_{task}"
    rows = usable(results, task).reset_index(drop=True)
    ref = reference_recon(results) if reference is None else float(reference)
    order = np.argsort(rows["recon_test"].to_numpy(float), kind="mergesort")
    rows = rows.iloc[order].reset_index(drop=True)
    d = rows[score].to_numpy(float)
    r = rows["recon_test"].to_numpy(float)
    included = _resample_rows(rows, n_boot, np.random.default_rng(seed))
    out, draws = [], {}
    for front in front_names(rows):
        member = _members(rows, front)
        value = _hypervolumes(np.where(member, d, 0.0)[None, :], r, ref)[0]
        boot = _hypervolumes(np.where(included & member, d, 0.0), r, ref)
        draws[front] = boot
        low, high = np.percentile(boot, [2.5, 97.5]) if n_boot else (np.nan, np.nan)
        out.append({
            "front": front,
            "hypervolume": value,
            "hypervolume_norm": value / ref,
            "ci_low": low,
            "ci_high": high,
            "ci_low_norm": low / ref,
            "ci_high_norm": high / ref,
            "n_front": int(nondominated_mask(d[member], r[member]).sum()),
            "n_models": int(rows[member].groupby(["trial_id", "replicate"]).ngroups),
            "reference_recon": ref,
        })
    return pd.DataFrame(out, columns=list(_HV_COLUMNS)), draws


def _resample_rows(rows: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_rows) bool: is the row's model in the resample (replicates drawn with
    replacement within each (family, value)). Duplicates do not change a front, so a set
    membership is all the hypervolume needs."""
    model = rows.groupby(["trial_id", "replicate"], sort=True).ngroup().to_numpy()
    n_models = int(model.max()) + 1 if model.size else 0
    included = np.zeros((n_boot, n_models), dtype=bool)
    boot = np.arange(n_boot)[:, None]
    for _, group in rows.groupby(["family", "value"], sort=True):
        units = np.unique(model[group.index.to_numpy()])
        draws = rng.integers(0, units.size, size=(n_boot, units.size))
        included[boot, units[draws]] = True
    return included[:, model]


def domination_shares(fronts: pd.DataFrame, task: str) -> pd.DataFrame:
    """Share of family A's front points (row) dominated by some point of family B's front
    (column). Diagonal is 0 by construction."""
    score = f"disentanglement_{task}"
    families = [f for f in fronts["front"].unique() if f != "all"]
    table = pd.DataFrame(0.0, index=pd.Index(families, name="dominated"),
                         columns=pd.Index(families, name="by"))
    for a in families:
        pa = fronts[fronts["front"] == a]
        da, ra = pa[score].to_numpy(float)[:, None], pa["recon_test"].to_numpy(float)[:, None]
        for b in families:
            if a == b:
                continue
            pb = fronts[fronts["front"] == b]
            db, rb = pb[score].to_numpy(float)[None, :], pb["recon_test"].to_numpy(float)[None, :]
            dominated = (db >= da) & (rb <= ra) & ((db > da) | (rb < ra))
            table.at[a, b] = float(dominated.any(axis=1).mean()) if len(pa) else np.nan
    return table


def compare(table: pd.DataFrame, draws: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every pair of families on one task (from :func:`hypervolume_table`): hypervolume
    difference, its paired 95 % CI, and whether the two fronts' CIs overlap (then they are
    called not distinguishable)."""
    rows = table[table["front"] != "all"].sort_values("hypervolume", ascending=False)
    out = []
    for i, (_, a) in enumerate(rows.iterrows()):
        for _, b in rows.iloc[i + 1 :].iterrows():
            diff = draws[a["front"]] - draws[b["front"]]
            low, high = np.percentile(diff, [2.5, 97.5]) if diff.size else (np.nan, np.nan)
            out.append({
                "better": a["front"],
                "worse": b["front"],
                "difference": a["hypervolume"] - b["hypervolume"],
                "difference_norm": a["hypervolume_norm"] - b["hypervolume_norm"],
                "difference_ci_low": low,
                "difference_ci_high": high,
                "difference_ci_low_norm": low / a["reference_recon"],
                "difference_ci_high_norm": high / a["reference_recon"],
                "relative": (a["hypervolume"] / b["hypervolume"] - 1)
                if b["hypervolume"] > 0 else np.nan,
                "cis_overlap": bool(a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]),
            })
    return out
