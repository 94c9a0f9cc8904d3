"""How an adaptive search got where it did: PBT's schedules, and the hypervolume of the
study's front as the search advanced.

Hypervolume progress, on the study's primary task (dSprites: 5var), in the study's fixed box
(`analysis.box`):
    adaptive / grid  after the n-th trial to finish (ordered by its last report's time), the
                     front of those trials' final evaluations, every member a point
    pbt              at every evaluation step, the front of the population's evaluations at
                     that step, one point per trial (the mean over its members); steps before
                     the last use the cheaper interim evaluation
Both read only the results tables, so they work on any (partial) study.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.box import Box
from analysis.pareto import hypervolume
from analysis.results import usable
from trainables import objectives
from trainables.columns import disentanglement

PROGRESS_COLUMNS = ("x", "hypervolume", "hypervolume_norm", "n_points")


def schedules(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, report): trial_id, family, step, value, cloned_from, cloned_at;
    for PBT the value a trial trained with over steps and where it copied another trial's
    weights (the report after the clone names the donor and the step it cloned at)."""
    columns = ["trial_id", "family", "step", "value", "cloned_from", "cloned_at"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    return curves[columns].sort_values(["trial_id", "step"], kind="mergesort").reset_index(
        drop=True)


def clones(curves: pd.DataFrame) -> pd.DataFrame:
    """Every PBT clone: trial_id, the step it cloned at, the value it continued with, its
    donor."""
    found = curves[curves["cloned_from"].notna()]
    return found[["trial_id", "family", "cloned_at", "value", "cloned_from"]].astype(
        {"cloned_at": int}).reset_index(drop=True)


def final_objective(curves: pd.DataFrame, pbt: dict[str, Any], task: str) -> dict[str, float]:
    """Each trial's PBT objective ([pbt] table, on the measures of the primary `task` it
    selected on) at its last report."""
    last = curves.sort_values("step", kind="mergesort").groupby("trial_id").tail(1)
    return {row["trial_id"]: objectives.score_for(row, pbt, task)
            for row in last.to_dict("records")}


def rank_labels(state: dict[str, Any]) -> dict[str, str]:
    """Each trial's rank as pbt_state.json last saved it (`search_spaces.pbt.ranks`), as the
    schedules figure writes it: "#2" second by the scalar objective, "F1 #2" front 1, second
    in MO-PBT's spread order (`[pbt] exploit = "pareto"`)."""
    labels = {}
    for trial_id, saved in state.get("trials", {}).items():
        rank = saved.get("rank")
        if rank:
            front = f"F{rank['front']} " if "front" in rank else ""
            labels[trial_id] = f"{front}#{rank['position']}"
    return labels


def pbt_progress(curves: pd.DataFrame, box: Box, task: str) -> pd.DataFrame:
    """Hypervolume (on the primary `task`) of the population's evaluations at each evaluation
    step > 0; `x` is the step."""
    evaluated = curves[(curves["step"] == curves["eval_step"]) & (curves["step"] > 0)]
    rows = []
    for step, at in evaluated.groupby("step"):
        rows.append(_row(step, at[disentanglement(task)], at["recon_test"], box, task))
    return pd.DataFrame(rows, columns=list(PROGRESS_COLUMNS))


def trial_progress(results: pd.DataFrame, trials: pd.DataFrame, curves: pd.DataFrame,
                   box: Box, task: str) -> pd.DataFrame:
    """Hypervolume (on the primary `task`) of the finished trials' final evaluations after
    each trial finished; `x` is how many had finished."""
    finished = trials[trials["finished"].astype(bool)]
    ended = curves.groupby("trial_id")["timestamp"].max()
    order = sorted(finished["trial_id"], key=lambda t: (ended.get(t, math.inf), t))
    rows = usable(results, task)
    out = []
    for n in range(1, len(order) + 1):
        mine = rows[rows["trial_id"].isin(order[:n])]
        out.append(_row(n, mine[disentanglement(task)], mine["recon_test"], box, task))
    return pd.DataFrame(out, columns=list(PROGRESS_COLUMNS))


def _row(x: float, scores: pd.Series, recon: pd.Series, box: Box,
         task: str) -> dict[str, float]:
    d, r = np.asarray(scores, dtype=float), np.asarray(recon, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r)
    volume = hypervolume(d[ok], r[ok], box.recon_reference, box.floor(task))
    return {"x": x, "hypervolume": volume, "hypervolume_norm": volume / box.area(task),
            "n_points": int(ok.sum())}
