"""Pareto fronts (higher disentanglement, lower test recon) and their hypervolumes.

Fronts are taken over the healthy rows of ``results.csv`` (every replicate × calculation, like
the points of the paper's Figure 1), per family and over all families (``front = "all"``).

Hypervolume: the area a front dominates inside a fixed box (`Box`: test recon up to a
reference fixed in the spec's ``[report]`` table, disentanglement above a floor), normalised
by the box's area: a fraction in [0, 1], comparable between studies with the same box.
The pooled front of all replicates is the study's best front (descriptive); inference uses
the replicate index as the unit: HV(r) of each single-seed sweep, their mean and interval,
and differences between families (`analysis.inference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import inference
from analysis.box import Box
from analysis.results import families_in, usable

_HV_COLUMNS = (
    "front", "pooled_norm", "mean_norm", "ci_low_norm", "ci_high_norm", "n_replicates",
    "n_front", "n_models", "recon_reference", "floor",
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


def hypervolume(disentanglement: np.ndarray, recon: np.ndarray, reference: float,
                floor: float = 0.0) -> float:
    """Area dominated by the points within [0, reference] recon × [floor, 1] disentanglement."""
    d = np.asarray(disentanglement, dtype=float)[None, :]
    return float(hypervolumes(d, np.asarray(recon, dtype=float)[None, :], reference, floor)[0])


def hypervolumes(disentanglement: np.ndarray, recon: np.ndarray, reference: float,
                 floor: float = 0.0) -> np.ndarray:
    """`hypervolume` of each row of (n, m) point sets: ∫ max(0, max{d_p : r_p ≤ r} − floor)
    dr from 0 to ``reference``, a running max times the widths between consecutive recons.
    Non-finite points count for nothing."""
    d = np.asarray(disentanglement, dtype=float)
    r = np.asarray(recon, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r)
    d, r = np.where(ok, d, -np.inf), np.where(ok, r, np.inf)
    order = np.argsort(r, axis=1, kind="mergesort")
    r_sorted = np.take_along_axis(r, order, axis=1)
    d_sorted = np.take_along_axis(d, order, axis=1)
    ends = np.full((r.shape[0], 1), float(reference))
    widths = np.diff(np.minimum(np.concatenate([r_sorted, ends], axis=1), reference), axis=1)
    heights = np.maximum.accumulate(np.clip(d_sorted - floor, 0.0, 1.0 - floor), axis=1)
    return (heights * widths).sum(axis=1)


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


def hypervolume_table(results: pd.DataFrame, task: str, box: Box
                      ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per front (each family, then all): the pooled front's normalised hypervolume
    (all replicates together: the study's best front, descriptive, no interval), and the
    mean over replicate indices r of HV(r), the normalised hypervolume of the single-seed
    sweep r, with its t-interval (`analysis.inference`); and each front's HV(r) by r."""
    score = f"disentanglement_{task}"
    rows = usable(results, task)
    floor, area = box.floor(task), box.area(task)
    out, per_replicate = [], {}
    for front in front_names(rows):
        mine = rows[_members(rows, front)]
        d, r = mine[score].to_numpy(float), mine["recon_test"].to_numpy(float)
        by_replicate = [g for _, g in mine.groupby("replicate", sort=True)]
        hv = np.array([hypervolume(g[score].to_numpy(float), g["recon_test"].to_numpy(float),
                                   box.recon_reference, floor) for g in by_replicate]) / area
        per_replicate[front] = hv
        mean = inference.t_interval(hv)
        out.append({
            "front": front,
            "pooled_norm": hypervolume(d, r, box.recon_reference, floor) / area,
            "mean_norm": mean.estimate,
            "ci_low_norm": mean.low,
            "ci_high_norm": mean.high,
            "n_replicates": mean.n,
            "n_front": int(nondominated_mask(d, r).sum()),
            "n_models": int(mine.groupby(["trial_id", "replicate"]).ngroups),
            "recon_reference": box.recon_reference,
            "floor": floor,
        })
    return pd.DataFrame(out, columns=list(_HV_COLUMNS)), per_replicate


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


def compare(table: pd.DataFrame, per_replicate: dict[str, np.ndarray], paired: bool
            ) -> list[dict[str, Any]]:
    """Every pair of families on one task (from :func:`hypervolume_table`), the larger mean
    first: the difference of the mean normalised hypervolumes, its 95 % interval (Welch's,
    or paired t when replicates share seeds) and the permutation p-value (uncorrected:
    `analysis.summary` applies Holm's correction over every pair and task)."""
    rows = table[table["front"] != "all"].sort_values("mean_norm", ascending=False)
    out = []
    for i, (_, a) in enumerate(rows.iterrows()):
        for _, b in rows.iloc[i + 1 :].iterrows():
            first, second = per_replicate[a["front"]], per_replicate[b["front"]]
            pairable = paired and first.size == second.size
            found = inference.difference_interval(first, second, pairable)
            out.append({
                "better": a["front"],
                "worse": b["front"],
                "difference_norm": found.estimate,
                "difference_ci_low_norm": found.low,
                "difference_ci_high_norm": found.high,
                "interval": "paired t" if pairable else "Welch",
                "p_value": inference.permutation_p(first, second, pairable),
            })
    return out
