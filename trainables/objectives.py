"""Scalar scores of a trial's latest evaluation, for the searches that rank trials by one
number (Optuna's constrained objective, PBT). Plain functions of the reported means, so the
searches and the report compute them the same way."""

from __future__ import annotations

import math
from typing import Any

PBT_OBJECTIVES = ("constrained", "weighted")  # [pbt] objective


def score(result: dict[str, Any], objective: str, max_recon_test: float = 150.0,
          recon_scale: float = 1000.0) -> float:
    """Higher is better; NaN while the result has no finite evaluation.

    constrained  disentanglement_5var − max(0, recon_test / max_recon_test − 1): 5-variable
                 disentanglement subject to recon_test <= max_recon_test (an infeasible point
                 ranks below every feasible one that scores above its excess)
    weighted     disentanglement_5var − recon_test / recon_scale
    """
    d5, recon = result.get("disentanglement_5var"), result.get("recon_test")
    if d5 is None or recon is None or not (math.isfinite(d5) and math.isfinite(recon)):
        return math.nan
    if objective == "weighted":
        return float(d5) - float(recon) / recon_scale
    if objective == "constrained":
        return float(d5) - max(0.0, float(recon) / max_recon_test - 1.0)
    raise ValueError(f"objective must be one of {', '.join(PBT_OBJECTIVES)}, got {objective!r}")


def score_for(result: dict[str, Any], table: dict[str, Any]) -> float:
    """`score` with a spec table's `objective`, `max_recon_test` and `recon_scale` (PBT's)."""
    return score(result, table["objective"], table["max_recon_test"], table["recon_scale"])
