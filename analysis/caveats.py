"""What the report must say before any verdict: how far the models are from the seed's.

A verdict on models that have barely started to learn is no finding. `training_caveat` reads
the experiment's own records (the evaluated step of each trial, its architecture and its
training curve) and returns the report's first line when the study trained less than the
seed's schedule, with smaller networks, while the reconstruction error was still falling, or
with the Higgins classifier cut below the authors' budget (an unconverged classifier moves
each family's score by a different amount).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from metrics.higgins import CLASSIFIER_STEPS
from trainables.config import AUTHORS_STEPS

PAPER_WIDTH = 1200  # units per hidden layer in the seed's networks
PIPELINE_CHECK = 0.05  # below this fraction of the seed's steps: a pipeline check, not a finding
STILL_LEARNING = 0.05  # a relative drop of the training recon over the last quarter of training
LAST_PART = 0.25


def evaluated_steps(trials: pd.DataFrame) -> list[int]:
    """The step of each trial's latest evaluation (trials without one left out)."""
    return [int(s) for s in trials["evaluated_step"].dropna()]


def recon_drop(curves: pd.DataFrame, part: float = LAST_PART) -> float:
    """Median over trials of the relative fall of the training recon (window means) over
    the last `part` of each trial's curve: 0.1 = fell by 10 %; NaN without curves."""
    drops = []
    for _, curve in curves.dropna(subset=["recon"]).groupby("trial_id"):
        curve = curve.sort_values("step")
        last = curve["step"].iloc[-1]
        earlier = curve[curve["step"] <= last * (1 - part)]
        if earlier.empty or earlier["recon"].iloc[-1] <= 0:
            continue
        before, after = earlier["recon"].iloc[-1], curve["recon"].iloc[-1]
        drops.append((before - after) / before)
    return float(pd.Series(drops).median()) if drops else math.nan


def training_caveat(trials: pd.DataFrame, curves: pd.DataFrame,
                    train: dict[str, Any], rescored_at: int | None = None) -> str | None:
    """The report's first line when the study is not the seed's protocol, else None."""
    steps = evaluated_steps(trials)
    if not steps:
        return None
    most = max(steps)
    fraction = most / AUTHORS_STEPS
    width = min(int(train.get("encoder_width", PAPER_WIDTH)),
                int(train.get("decoder_width", PAPER_WIDTH)))
    drop = recon_drop(curves)
    still = math.isfinite(drop) and drop > STILL_LEARNING
    parts = []
    if fraction < 1:
        parts.append(f"models trained {most:,} of the seed's {AUTHORS_STEPS:,} steps")
    if width < PAPER_WIDTH:
        parts.append(f"with {width}-unit layers instead of the seed's {PAPER_WIDTH}")
    if still:
        parts.append(f"their training reconstruction error still fell by {drop:.0%} over the "
                     f"last {LAST_PART:.0%} of training (not converged)")
    classifier = rescored_at or train.get("higgins_classifier_steps")
    if train.get("higgins_protocol", "authors") == "authors" and classifier is not None \
            and int(classifier) < CLASSIFIER_STEPS:
        parts.append(f"the Higgins classifier trained {int(classifier):,} of the authors' "
                     f"{CLASSIFIER_STEPS:,} steps (`wae-study evaluate --metrics higgins` "
                     "re-scores at full budget)")
    if not parts:
        return None
    text = _capitalise(", ".join(parts))
    if fraction < PIPELINE_CHECK:
        return f"{text}: a pipeline check, not a finding. Read no verdict below as a result."
    return (f"{text}: a shorter study than the seed's. The verdicts below compare these models "
            "with each other; their absolute numbers are not the paper's.")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
