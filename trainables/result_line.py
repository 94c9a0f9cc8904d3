"""One report of a trial: a line of `result.json`, and the result Tune's callbacks see.

The trainable builds every report as a `ResultLine` and hands Tune `to_report()`; the
experiment folder's reader (`trainables.experiment`), the report (`analysis.results`),
`wae-study status` and the driver's progress lines read reports back with
`ResultLine.read`, which tolerates older and damaged lines (what is missing or of the wrong
type becomes None, NaN or empty). Tune adds keys of its own to each report; the three the
project reads are fields here (`trial_id`, `time_total_s`, `timestamp`).

A report carries the latest evaluation's means (`scores`: `trainables.columns.scores` and
`validation_scores` of the trial's dataset and any extra metric's, NaN before the first
evaluation) at the top level, so Tune's searchers
and schedulers rank by them; only a report made at an evaluation step holds that
evaluation's rows (`evaluation`, the rows of results.csv).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trainables.columns import is_score, is_validation_score
from trainables.config import EXTRA_METRICS

_FIELDS = ("step", "family", "param", "value", "loss", "recon", "member_loss", "diverged_at",
           "n_diverged", "seeds", "node_id", "device", "device_name", "precision",
           "precision_reason", "eval_step",
           "evaluation", "cloned_from", "cloned_at", "trial_id", "time_total_s", "timestamp")
_SAID_ONCE = ("evaluation", "cloned_from", "cloned_at")  # absent from reports without them
_TUNE = ("trial_id", "time_total_s", "timestamp")  # Tune adds these; the trainable does not


@dataclass(frozen=True)
class ResultLine:
    """One report: training progress, the trial's identity, the latest evaluation."""

    step: int  # training steps done
    family: str | None = None
    param: str | None = None  # "beta" or "lambda1"
    value: float = math.nan  # the value trained with up to this step (PBT changes it)
    loss: float = math.nan  # window means since the last report, over healthy members
    recon: float = math.nan
    member_loss: list[float] = field(default_factory=list)
    diverged_at: list[int] = field(default_factory=list)  # per member; -1 = healthy
    n_diverged: int = 0
    seeds: list[int] | None = None  # the members' seeds
    node_id: str | None = None
    device: str | None = None
    device_name: str | None = None
    precision: str | None = None  # what the trial trains in ("auto" resolved)
    precision_reason: str | None = None  # why (`trainables.precision.PrecisionChoice`)
    scores: dict[str, float] = field(default_factory=dict)  # the latest evaluation's means
    eval_step: int = -1  # the step of that evaluation (-1: none yet)
    evaluation: list[dict[str, Any]] | None = None  # this step's rows, when evaluated now
    cloned_from: str | None = None  # PBT: the donor trial, in the first report after a clone
    cloned_at: int | None = None  # PBT: the donor's step
    trial_id: str | None = None
    time_total_s: float | None = None
    timestamp: float | None = None

    def to_report(self) -> dict[str, Any]:
        """What the trainable hands `tune.report`: the fields and the scores, flat."""
        out = {name: getattr(self, name) for name in _FIELDS if name not in _TUNE}
        out = {k: v for k, v in out.items() if k not in _SAID_ONCE or v is not None}
        return {**out, **self.scores}

    @classmethod
    def read(cls, raw: dict[str, Any]) -> ResultLine | None:
        """A report as written (a result.json line or Tune's result); None without a step."""
        step = raw.get("step")
        if not _is_number(step):
            return None
        scores = {k: _float(v) for k, v in raw.items()
                  if is_score(k) or is_validation_score(k) or k in EXTRA_METRICS}
        evaluation = raw.get("evaluation")
        return cls(
            step=int(step),
            family=_text(raw.get("family")),
            param=_text(raw.get("param")),
            value=_float(raw.get("value")),
            loss=_float(raw.get("loss")),
            recon=_float(raw.get("recon")),
            member_loss=[_float(v) for v in _list(raw.get("member_loss"))],
            diverged_at=[int(v) for v in _list(raw.get("diverged_at")) if _is_number(v)],
            n_diverged=int(raw["n_diverged"]) if _is_number(raw.get("n_diverged")) else 0,
            seeds=[int(v) for v in raw["seeds"]] if isinstance(raw.get("seeds"), list) else None,
            node_id=_text(raw.get("node_id")),
            device=_text(raw.get("device")),
            device_name=_text(raw.get("device_name")),
            precision=_text(raw.get("precision")),
            precision_reason=_text(raw.get("precision_reason")),
            scores=scores,
            eval_step=int(raw["eval_step"]) if _is_number(raw.get("eval_step")) else -1,
            evaluation=[r for r in evaluation if isinstance(r, dict)]
            if isinstance(evaluation, list) else None,
            cloned_from=_text(raw.get("cloned_from")),
            cloned_at=int(raw["cloned_at"]) if _is_number(raw.get("cloned_at")) else None,
            trial_id=_text(raw.get("trial_id")),
            time_total_s=_float(raw["time_total_s"]) if _is_number(raw.get("time_total_s"))
            else None,
            timestamp=_float(raw["timestamp"]) if _is_number(raw.get("timestamp")) else None,
        )

    def score(self, name: str) -> float:
        """One of the latest evaluation's means (NaN when not measured)."""
        return self.scores.get(name, math.nan)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
