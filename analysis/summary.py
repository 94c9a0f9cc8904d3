"""What a report says, as data: the verdicts, counts, caveat and provenance of a study.

`analyse` computes everything the report states (Pareto fronts, hypervolumes in the study's
fixed box with replicate-level intervals, the pairwise tests with Holm's correction over every
pair and task, the headline numbers, the answers in one line and in detail, the first line's
caveat, provenance) without drawing or writing anything, so it can be tested on its own;
`summary_data` is what `summary.json` holds. `analysis.report` renders it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis import inference
from analysis.aggregate import PAPER, Headline, aggregate, headline
from analysis.box import Box
from analysis.caveats import training_caveat
from analysis.pareto import compare, domination_shares, hypervolume_table, pareto_rows
from analysis.provenance import report_provenance
from analysis.results import (
    RECON_SAMPLE,
    StudyResults,
    families_in,
    metric_columns,
    trained_budget,
    usable,
)
from trainables.columns import task_short, task_title

NO_RESULTS = "No finished trials yet: no evaluated models to compare."


BOX_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)  # the sensitivity table's recon references


@dataclass
class TaskAnalysis:
    """Everything computed for one disentanglement task of the study (dSprites: 4var, 5var)."""

    task: str
    aggregated: pd.DataFrame
    fronts: pd.DataFrame
    hypervolumes: pd.DataFrame
    comparisons: list[dict[str, Any]]  # with `p_holm` and `distinguishable` once corrected
    domination: pd.DataFrame
    replicates: int  # most healthy replicates of any (family, value): 1 = no interval
    paired: bool  # the study's seeds are paired: sign-flip tests
    sensitivity: pd.DataFrame  # each pair's difference and interval at other references


def most_replicates(results: pd.DataFrame, task: str) -> int:
    """The most healthy replicates any (family, value) has for `task` (0 when none)."""
    rows = usable(results, task)
    if rows.empty:
        return 0
    return int(rows.groupby(["family", "value"])["replicate"].nunique().max())


def analyse_task(results: pd.DataFrame, task: str, box: Box, paired: bool) -> TaskAnalysis:
    """Aggregation, fronts, hypervolumes with intervals, pairwise tests, domination, and the
    pairwise differences at 0.5-2x the box's recon reference."""
    fronts = pareto_rows(results, task)
    tables = {factor: hypervolume_table(results, task, box.scaled(factor))
              for factor in BOX_FACTORS}
    pairs = {factor: compare(*tables[factor], paired) for factor in BOX_FACTORS}
    sensitivity = [{"recon_reference": box.recon_reference * factor, **pair}
                   for factor in BOX_FACTORS for pair in pairs[factor]]
    return TaskAnalysis(
        task=task,
        aggregated=aggregate(results, task),
        fronts=fronts,
        hypervolumes=tables[1.0][0],
        comparisons=pairs[1.0],
        domination=domination_shares(fronts, task),
        replicates=most_replicates(results, task),
        paired=paired,
        sensitivity=pd.DataFrame(sensitivity),
    )


def correct(tasks: dict[str, TaskAnalysis]) -> int:
    """Holm's correction over every pair × task the report states: each comparison gets
    `p_holm` and `distinguishable` (rejected at 5 %); returns the number of tests."""
    pairs = [c for a in tasks.values() for c in a.comparisons]
    for pair, adjusted in zip(pairs, inference.holm([c["p_value"] for c in pairs]),
                              strict=True):
        pair["p_holm"] = adjusted
        pair["distinguishable"] = bool(np.isfinite(adjusted) and adjusted < inference.ALPHA)
    return sum(np.isfinite(c["p_value"]) for c in pairs)


def answer(analysis: TaskAnalysis, n_tests: int) -> str:
    """The one-sentence verdict for a task: which family has the larger expected front
    hypervolume, by how much, and whether the corrected test tells them apart."""
    name = task_title(analysis.task)
    hv = analysis.hypervolumes.set_index("front")
    ranked = _ranked(hv)
    if len(ranked) < 2:
        return f"{name}: {_nothing_to_compare(ranked)}"
    top = ranked[0]
    single = analysis.replicates <= 1
    sentences = [f"{name}: {top} has the largest mean front hypervolume (normalised, over "
                 f"single-seed sweeps), {_hv_text(hv.loc[top], single)}."]
    for other in ranked[1:]:
        pair = _pair(analysis, top, other)
        difference = (f"difference {pair['difference_norm']:+.3f}" if single else
                      f"difference {pair['difference_norm']:+.3f} (95 % CI "
                      f"{pair['difference_ci_low_norm']:+.3f} to "
                      f"{pair['difference_ci_high_norm']:+.3f}, {pair['interval']})")
        if single:
            verdict = "how sure cannot be said with one replicate per value"
        elif pair["distinguishable"]:
            verdict = (f"{top} is better (permutation p = {pair['p_value']:.3g}, "
                       f"{pair['p_holm']:.3g} after Holm's correction over {n_tests} tests)")
        else:
            verdict = (f"not distinguishable with {analysis.replicates} replicates "
                       f"(permutation p = {pair['p_value']:.3g}, {pair['p_holm']:.3g} after "
                       f"Holm's correction over {n_tests} tests)")
        sentences.append(
            f"Against {other}, {_hv_text(hv.loc[other], single)}: {difference}; {verdict}; "
            f"{analysis.domination.at[other, top]:.0%} of {other}'s pooled front is dominated "
            f"by {top}'s.")
    if single:
        sentences.append("With one replicate per value no interval can be computed (the "
                         "replicate is the unit): run more replicates to know how sure this is.")
    else:
        sentences.extend(_unreachable_verdict(analysis.replicates, n_tests, analysis.paired))
    return " ".join(sentences)


def answer_line(analysis: TaskAnalysis, n_tests: int) -> str:
    """The task's answer in one line, for a reader who wants it first (the terminal, the top
    of the report): the same pairs and verdicts as `answer`, one clause per pair."""
    name = task_short(analysis.task)
    ranked = _ranked(analysis.hypervolumes.set_index("front"))
    if len(ranked) < 2:
        return f"{name}: {_nothing_to_compare(ranked)}"
    replicates = analysis.replicates
    clauses = []
    for other in ranked[1:]:
        pair = _pair(analysis, ranked[0], other)
        better, worse = pair["better"], pair["worse"]
        difference = f"{pair['difference_norm']:+.3f}"
        if replicates <= 1:
            clauses.append(f"{better} vs {worse}: {difference}, one replicate per value: "
                           "no interval, no test")
            continue
        interval = (f"{difference} [{pair['difference_ci_low_norm']:+.3f}, "
                    f"{pair['difference_ci_high_norm']:+.3f}], Holm p = {pair['p_holm']:.3g}")
        if pair["distinguishable"]:
            clauses.append(f"{better}'s front is larger than {worse}'s by {interval}")
        else:
            clauses.append(f"{better} vs {worse}: not distinguishable with {replicates} "
                           f"replicates ({interval})")
    if replicates > 1 and _unreachable(replicates, n_tests, analysis.paired):
        clauses.append(f"{inference.fewest_replicates(n_tests, analysis.paired)} replicates "
                       "per family are the fewest that can tell two apart")
    return f"{name}: " + "; ".join(clauses)


def _ranked(hypervolumes: pd.DataFrame) -> list[str]:
    """The families, largest mean front hypervolume first (the order both answers follow)."""
    families = [f for f in hypervolumes.index if f != "all"]
    return sorted(families, key=lambda f: -hypervolumes.at[f, "mean_norm"])


def _pair(analysis: TaskAnalysis, top: str, other: str) -> dict[str, Any]:
    """The comparison of two families, whichever way round `compare` stored it."""
    return next(c for c in analysis.comparisons if {c["better"], c["worse"]} == {top, other})


def _nothing_to_compare(families: list[str]) -> str:
    """What a task with fewer than two evaluated families can say."""
    if not families:
        return NO_RESULTS
    return f"only {families[0]} has evaluated models; nothing to compare yet."


def _unreachable(replicates: int, n_tests: int, paired: bool) -> bool:
    """No pair can be told apart whatever the models did: the exact permutation test's
    smallest p at this many replicates does not survive Holm's first step."""
    return n_tests * inference.smallest_p(replicates, replicates, paired) >= inference.ALPHA


def _unreachable_verdict(replicates: int, n_tests: int, paired: bool) -> list[str]:
    """A sentence when no pair could be told apart whatever the models did."""
    if not _unreachable(replicates, n_tests, paired):
        return []
    floor = inference.smallest_p(replicates, replicates, paired)
    return [f"No difference can be called with {replicates} replicates: the permutation "
            f"test cannot give p below {floor:.3g} ({min(1.0, n_tests * floor):.3g} after "
            f"Holm's correction over {n_tests} tests); "
            f"{inference.fewest_replicates(n_tests, paired)} replicates per family are the "
            "fewest that can."]


def _hv_text(row: pd.Series, single: bool = False) -> str:
    if single:
        return f"{row['mean_norm']:.3f} (one replicate per value: no interval)"
    return (f"{row['mean_norm']:.3f} (95 % CI {row['ci_low_norm']:.3f}–"
            f"{row['ci_high_norm']:.3f}, {int(row['n_replicates'])} replicates)")


@dataclass
class Analysis:
    """Everything the report states about one study."""

    box: Box  # the hypervolume's box, from the spec
    tasks: dict[str, TaskAnalysis]
    n_tests: int  # the tests Holm's correction runs over
    heads: list[Headline]  # the headline numbers beside the paper's
    answers: dict[str, str]  # per task, the one-sentence verdict
    answer_lines: dict[str, str]  # per task, the verdict in one line (`answer_line`)
    caveat: str | None  # the first line when the models are not the seed's
    provenance: dict[str, Any]
    notes: list[str]


def analyse(study: StudyResults) -> Analysis:
    """The study's verdicts, fronts, headline numbers, caveat and provenance."""
    results = study.results
    box = Box.from_spec(study.spec)
    paired = study.spec.get("study", {}).get("seeds") == "paired"
    tasks = {t: analyse_task(results, t, box, paired) for t in study.tasks}
    n_tests = correct(tasks)
    train = dict(study.spec.get("train", {}))
    notes = list(study.warnings)
    if study.higgins_rescored_at is not None:
        trained = trained_budget(study.spec)
        notes.append(f"Higgins scores: every model re-scored by `wae-study evaluate` with "
                     f"{study.higgins_rescored_at:,} classifier steps (trained with "
                     f"{trained:,}, kept as the `_c{trained}` columns of results.csv; the "
                     "step-0 baselines keep the trained budget).")
    trained_in = study.trials["precision"].dropna().value_counts()
    if len(trained_in) > 1:
        notes.append("Trials trained in different precisions (" + ", ".join(
            f"{name}: {count}" for name, count in trained_in.items()) + "; the footer says "
            "which and why): a bf16 model's scores differ from its fp32 twin's about as much as "
            "another seed's, so the comparisons below mix the two. Set [train] precision to "
            "one value to avoid it.")
    if study.recon_measure != RECON_SAMPLE:
        notes.append(f"recon_test / recon_train of this experiment decode the "
                     f"{study.recon_measure} (written before the sampled measure): lower "
                     "than the seed's numbers, which decode one posterior sample per image.")
    return Analysis(
        box=box,
        tasks=tasks,
        n_tests=n_tests,
        heads=headline(results),
        answers={task: answer(analysis, n_tests) for task, analysis in tasks.items()},
        answer_lines={task: answer_line(analysis, n_tests) for task, analysis in tasks.items()},
        caveat=training_caveat(study.trials, study.curves, train, study.higgins_rescored_at),
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


def summary_data(study: StudyResults, found: Analysis) -> dict[str, Any]:
    """What summary.json holds (before `jsonable`)."""
    tasks, box = found.tasks, found.box
    return {
        "caveat": found.caveat,
        "recon_measure": study.recon_measure,
        "higgins_classifier_steps": study.higgins_rescored_at or trained_budget(study.spec),
        "study": study.name,
        "experiment_dir": str(study.experiment_dir),
        "answer_lines": found.answer_lines,
        "answer": found.answers,
        "counts": counts(study),
        "headline": [asdict(h) for h in found.heads],
        "paper": PAPER,
        "hypervolume": {
            "box": {"recon_reference": box.recon_reference,
                    "disentanglement_floor": box.disentanglement_floor,
                    "rule": "fixed in the spec's [report] table before the study ran"},
            "inference": {
                "unit": "replicate index: HV(r) of the single-seed sweep r of each family",
                "interval": "95 % Student t of the mean of HV(r); differences: Welch, or "
                            "paired t when the study's seeds are paired",
                "test": "exact permutation (label swap; sign flip when paired), two-sided",
                "correction": f"Holm over {found.n_tests} tests (pairs x tasks)",
            },
            **{
                task: {
                    "fronts": a.hypervolumes.set_index("front").to_dict(orient="index"),
                    "comparisons": a.comparisons,
                    "sensitivity": a.sensitivity.to_dict(orient="records"),
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
