"""What the searches rank trials by: the two signals (disentanglement on the dataset's primary
task ↑, reconstruction error ↓) of a trial's latest evaluation, and the scalar scores built
from them (Optuna's constrained objective, PBT's scalar exploit). Plain functions of the
reported means, so the searches and the report compute them the same way. The task is the
study's `trainables.columns.primary_task`, the one over all its latent factors (dSprites:
5var).

A search selects on the *validation* measures by default (`select_on = "validation"`): the
validation images and Higgins votes are disjoint from the test ones the report states
(`trainables.evaluate`), so a search's final front carries no winner's curse of its own
selection. `select_on = "test"` is the selection the project made before validation existed
(kept to measure that bias, and what an experiment written then resumes with).
"""

from __future__ import annotations

import math
from typing import Any

from trainables.columns import VALIDATION, VALIDATION_RECON, disentanglement

PBT_OBJECTIVES = ("constrained", "weighted")  # [pbt] objective
SELECT_ON = ("validation", "test")  # [adaptive] / [pbt] select_on


def signal_keys(select_on: str, task: str) -> tuple[str, str]:
    """The result keys a selection reads: (`task`'s disentanglement ↑, reconstruction error
    ↓) among the validation or the test measures."""
    if select_on not in SELECT_ON:
        raise ValueError(f"select_on must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
    if select_on == "validation":
        return VALIDATION + disentanglement(task), VALIDATION_RECON
    return disentanglement(task), "recon_test"


def signals(result: dict[str, Any], select_on: str, task: str) -> tuple[float, float]:
    """(disentanglement, reconstruction error) a search reads: NaN where not measured."""
    values = [result.get(key) for key in signal_keys(select_on, task)]
    d, recon = (float(v) if v is not None else math.nan for v in values)
    return d, recon


def score(result: dict[str, Any], objective: str, max_recon: float = 150.0,
          recon_scale: float = 1000.0, select_on: str = "validation", *, task: str) -> float:
    """Higher is better; NaN while the result has no finite evaluation. With d the
    disentanglement on `task`:

    constrained  d − max(0, recon / max_recon − 1): disentanglement subject to
                 recon <= max_recon (an infeasible point ranks below every feasible one that
                 scores above its excess)
    weighted     d − recon / recon_scale
    """
    d, recon = signals(result, select_on, task)
    if not (math.isfinite(d) and math.isfinite(recon)):
        return math.nan
    if objective == "weighted":
        return d - recon / recon_scale
    if objective == "constrained":
        return d - max(0.0, recon / max_recon - 1.0)
    raise ValueError(f"objective must be one of {', '.join(PBT_OBJECTIVES)}, got {objective!r}")


def score_for(result: dict[str, Any], table: dict[str, Any], task: str) -> float:
    """`score` on `task` with a spec table's `objective`, `max_recon_test`, `recon_scale` and
    `select_on` (PBT's)."""
    return score(result, table["objective"], table["max_recon_test"], table["recon_scale"],
                 table.get("select_on", "test"), task=task)
