"""What the searches rank trials by: the two signals (5-variable disentanglement ↑,
reconstruction error ↓) of a trial's latest evaluation, and the scalar scores built from them
(Optuna's constrained objective, PBT's scalar exploit). Plain functions of the reported means,
so the searches and the report compute them the same way.

A search selects on the *validation* measures by default (`select_on = "validation"`): the
validation images and Higgins votes are disjoint from the test ones the report states
(`trainables.evaluate`), so a search's final front carries no winner's curse of its own
selection. `select_on = "test"` is the selection the project made before validation existed
(kept to measure that bias, and what an experiment written then resumes with).
"""

from __future__ import annotations

import math
from typing import Any

PBT_OBJECTIVES = ("constrained", "weighted")  # [pbt] objective
SELECT_ON = ("validation", "test")  # [adaptive] / [pbt] select_on
# (disentanglement ↑, reconstruction error ↓): the result keys each selection reads
SIGNAL_KEYS: dict[str, tuple[str, str]] = {
    "validation": ("validation_disentanglement_5var", "validation_recon"),
    "test": ("disentanglement_5var", "recon_test"),
}


def signals(result: dict[str, Any], select_on: str) -> tuple[float, float]:
    """(5-var disentanglement, reconstruction error) a search reads: NaN where not measured."""
    if select_on not in SIGNAL_KEYS:
        raise ValueError(f"select_on must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
    values = [result.get(key) for key in SIGNAL_KEYS[select_on]]
    d5, recon = (float(v) if v is not None else math.nan for v in values)
    return d5, recon


def score(result: dict[str, Any], objective: str, max_recon: float = 150.0,
          recon_scale: float = 1000.0, select_on: str = "validation") -> float:
    """Higher is better; NaN while the result has no finite evaluation.

    constrained  disentanglement_5var − max(0, recon / max_recon − 1): 5-variable
                 disentanglement subject to recon <= max_recon (an infeasible point ranks
                 below every feasible one that scores above its excess)
    weighted     disentanglement_5var − recon / recon_scale
    """
    d5, recon = signals(result, select_on)
    if not (math.isfinite(d5) and math.isfinite(recon)):
        return math.nan
    if objective == "weighted":
        return d5 - recon / recon_scale
    if objective == "constrained":
        return d5 - max(0.0, recon / max_recon - 1.0)
    raise ValueError(f"objective must be one of {', '.join(PBT_OBJECTIVES)}, got {objective!r}")


def score_for(result: dict[str, Any], table: dict[str, Any]) -> float:
    """`score` with a spec table's `objective`, `max_recon_test`, `recon_scale` and
    `select_on` (PBT's)."""
    return score(result, table["objective"], table["max_recon_test"], table["recon_scale"],
                 table.get("select_on", "test"))
