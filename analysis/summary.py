"""What a report says, as data: the verdicts, counts, caveat and provenance of a study.

`analyse` computes everything the report states (Pareto fronts, hypervolumes with bootstrap
intervals, the pairwise comparisons, the headline numbers, the one-sentence answers, the
first line's caveat, provenance) without drawing or writing anything, so it can be tested on
its own; `summary_data` is what `summary.json` holds. `analysis.report` renders it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregate import PAPER, aggregate, headline
from analysis.caveats import training_caveat
from analysis.pareto import (
    BOX_MARGIN,
    compare,
    domination_shares,
    hypervolume_table,
    pareto_rows,
    reference_recon,
)
from analysis.provenance import report_provenance
from analysis.results import (
    RECON_SAMPLE,
    TASK_TITLE,
    TASKS,
    StudyResults,
    families_in,
    metric_columns,
    usable,
)

NO_RESULTS = "No finished trials yet: no evaluated models to compare."


@dataclass
class TaskAnalysis:
    """Everything computed for one disentanglement task (4var or 5var)."""

    task: str
    aggregated: pd.DataFrame
    fronts: pd.DataFrame
    hypervolumes: pd.DataFrame
    comparisons: list[dict[str, Any]]
    domination: pd.DataFrame
    replicates: int  # most healthy replicates of any (family, value): 1 = no interval


def most_replicates(results: pd.DataFrame, task: str) -> int:
    """The most healthy replicates any (family, value) has for `task` (0 when none)."""
    rows = usable(results, task)
    if rows.empty:
        return 0
    return int(rows.groupby(["family", "value"])["replicate"].nunique().max())


def analyse_task(
    results: pd.DataFrame, task: str, reference: float, n_boot: int, seed: int
) -> TaskAnalysis:
    """Aggregation, fronts, hypervolumes with CIs, pairwise comparisons and domination."""
    fronts = pareto_rows(results, task)
    hv, draws = hypervolume_table(results, task, reference=reference, n_boot=n_boot, seed=seed)
    return TaskAnalysis(
        task=task,
        aggregated=aggregate(results, task),
        fronts=fronts,
        hypervolumes=hv,
        comparisons=compare(hv, draws),
        domination=domination_shares(fronts, task),
        replicates=most_replicates(results, task),
    )


def answer(analysis: TaskAnalysis) -> str:
    """The one-sentence verdict for a task: who has the larger front, by how much, how sure."""
    name = TASK_TITLE[analysis.task]
    hv = analysis.hypervolumes.set_index("front")
    families = [f for f in hv.index if f != "all"]
    if not families:
        return f"{name}: {NO_RESULTS}"
    if len(families) == 1:
        return f"{name}: only {families[0]} has evaluated models; nothing to compare yet."
    ranked = sorted(families, key=lambda f: -hv.at[f, "hypervolume"])
    top = ranked[0]
    single = analysis.replicates <= 1
    sentences = [
        f"{name}: {top} has the largest Pareto-front hypervolume (normalised), "
        f"{_hv_text(hv.loc[top], single)}."
    ]
    for other in ranked[1:]:
        pair = next(c for c in analysis.comparisons if {c["better"], c["worse"]} == {top, other})
        if single:
            verdict = "how sure cannot be said"
        elif pair["cis_overlap"]:
            verdict = f"{top} and {other} are not distinguishable (95 % CIs overlap)"
        else:
            verdict = "the 95 % CIs do not overlap"
        sentences.append(
            f"Against {other}, {_hv_text(hv.loc[other], single)}: larger by "
            f"{pair['difference_norm']:.3f}{_percent(pair['relative'])}; {verdict}; "
            f"{analysis.domination.at[other, top]:.0%} of {other}'s front is dominated by "
            f"{top}'s."
        )
    if single:
        sentences.append(
            "With one replicate per value no interval can be computed (the bootstrap "
            "resamples replicates): run more replicates to know how sure this is.")
    return " ".join(sentences)


def _hv_text(row: pd.Series, single: bool = False) -> str:
    if single:
        return f"{row['hypervolume_norm']:.3f} (one replicate per value: no interval)"
    return (
        f"{row['hypervolume_norm']:.3f} (95 % CI {row['ci_low_norm']:.3f}–"
        f"{row['ci_high_norm']:.3f})"
    )


def _percent(ratio: float) -> str:
    return "" if not np.isfinite(ratio) else f" ({ratio:+.0%} relative)"


@dataclass
class Analysis:
    """Everything the report states about one study."""

    reference: float  # the hypervolume's reference test recon
    tasks: dict[str, TaskAnalysis]
    heads: pd.DataFrame  # the headline numbers beside the paper's
    answers: dict[str, str]  # per task, the one-sentence verdict
    caveat: str | None  # the first line when the models are not the seed's
    provenance: dict[str, Any]
    notes: list[str]


def analyse(study: StudyResults, n_boot: int, seed: int) -> Analysis:
    """The study's verdicts, fronts, headline numbers, caveat and provenance."""
    results = study.results
    reference = reference_recon(results)
    tasks = {t: analyse_task(results, t, reference, n_boot, seed) for t in TASKS}
    train = dict(study.spec.get("train", {}))
    notes = list(study.warnings)
    if study.recon_measure != RECON_SAMPLE:
        notes.append(f"recon_test / recon_train of this experiment decode the "
                     f"{study.recon_measure} (written before the sampled measure): lower "
                     "than the seed's numbers, which decode one posterior sample per image.")
    return Analysis(
        reference=reference,
        tasks=tasks,
        heads=headline(results),
        answers={task: answer(analysis) for task, analysis in tasks.items()},
        caveat=training_caveat(study.trials, study.curves, train),
        provenance=report_provenance(study.experiment_dir, train,
                                     study.trials.to_dict("records")),
        notes=notes,
    )


def counts(study: StudyResults) -> dict[str, int]:
    """How much of the study there is: trials, evaluated models and rows, diverged members."""
    trials, results = study.trials, study.results
    healthy = usable(results)
    evaluated = trials["evaluated_step"].notna()
    return {
        "trials": len(trials),
        "trials_finished": int(trials["finished"].sum()),
        "trials_evaluated": int(evaluated.sum()),
        "trials_unfinished_evaluated": int((evaluated & ~trials["finished"].astype(bool)).sum()),
        "models": _n_models(results),
        "healthy_models": _n_models(healthy),
        "rows": len(results),
        "diverged_members": len(study.diverged),
    }


def _n_models(rows: pd.DataFrame) -> int:
    return int(rows.groupby(["trial_id", "replicate"]).ngroups) if len(rows) else 0


def baseline_table(baseline: pd.DataFrame) -> pd.DataFrame:
    """Step-0 (untrained encoder) scores: mean and std of every metric per family and overall."""
    rows = baseline[~baseline["diverged"]]
    out = []
    for family in [*families_in(rows), "all"]:
        mine = rows if family == "all" else rows[rows["family"] == family]
        entry: dict[str, Any] = {"family": family, "n_rows": len(mine)}
        for m in metric_columns(baseline):
            entry[f"{m}_mean"] = mine[m].mean()
            entry[f"{m}_std"] = mine[m].std(ddof=1)
        out.append(entry)
    return pd.DataFrame(out) if len(rows) else pd.DataFrame()


def summary_data(study: StudyResults, found: Analysis, n_boot: int, seed: int) -> dict[str, Any]:
    """What summary.json holds (before `jsonable`)."""
    tasks, reference = found.tasks, found.reference
    return {
        "caveat": found.caveat,
        "recon_measure": study.recon_measure,
        "study": study.name,
        "experiment_dir": str(study.experiment_dir),
        "answer": found.answers,
        "counts": counts(study),
        "headline": found.heads.to_dict(orient="records"),
        "paper": PAPER,
        "hypervolume": {
            "reference_point": {"disentanglement": 0.0, "recon_test": reference},
            "reference_rule": f"{BOX_MARGIN} x the largest healthy recon_test of the study",
            "bootstrap": {"resamples": n_boot, "seed": seed, "interval": "95 % percentile",
                          "unit": "replicates within (family, value)"},
            **{
                task: {
                    "fronts": a.hypervolumes.set_index("front").to_dict(orient="index"),
                    "comparisons": a.comparisons,
                }
                for task, a in tasks.items()
            },
        },
        "domination_share": {
            task: a.domination.to_dict(orient="index") for task, a in tasks.items()
        },
        "aggregated": {task: a.aggregated.to_dict(orient="records") for task, a in tasks.items()},
        "baseline": baseline_table(study.baseline).to_dict(orient="records"),
        "diverged": study.diverged.to_dict(orient="records"),
        "notes": found.notes,
        "provenance": found.provenance,
    }


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN and pandas NA as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
