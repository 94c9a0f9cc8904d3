"""The outcome of a comparison of searches (`study.compare`): which method's final front is
largest at equal compute, by how much, how sure, and at what cost.

Each study (one method, one search seed) is scored by the hypervolume of its final front on
the *test* measures (every healthy member × calculation of its trials' last evaluations, as
the report's pooled front), normalised in the comparison's fixed box. The search seed is the
unit of replication: per method the mean over seeds with its t-interval; per pair of methods
Welch's interval and the exact permutation p (`analysis.inference`), Holm-corrected over every
pair and every task of the comparison's dataset (`trainables.columns.study_tasks`; dSprites:
4var and 5var). Where a method also ran selecting on the test measures (`<method>@test`),
the selection's bias is that study's hypervolume minus the validation-selected one's, tested
the same way in a Holm family of its own (a different question from which method is best).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import inference
from analysis.box import Box
from analysis.pareto import hypervolume, nondominated_mask
from analysis.results import load_results, usable
from trainables import experiment
from trainables.columns import study_primary_task, study_tasks


def study_columns(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """studies.csv's columns: a study, its hypervolume on each task (`hv_<task>`), its cost."""
    return ("study", "method", "select_on", "seed", *(f"hv_{task}" for task in tasks),
            "trials", "finished", "model_steps", "seconds")


@dataclass
class Outcome:
    """What the comparison's report states, as data; `answer`: one line per task first."""

    path: Path
    studies: pd.DataFrame
    methods: dict[str, list[dict[str, Any]]]  # per task, one row per method
    pairs: dict[str, list[dict[str, Any]]]  # per task, one row per pair of methods
    bias: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per task
    answer: list[str] = field(default_factory=list)


def label(method: str, select_on: str) -> str:
    """A method as the tables name it: `optuna`, or `optuna@test` for the test selection."""
    return method if select_on == "validation" else f"{method}@test"


def study_table(folder: Path, studies: list[Any], box: Box, times: dict[str, float],
                tasks: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per study (`study_columns`), and each study's usable rows (for the figure)."""
    rows, points = [], {}
    for study in studies:
        where = Path(folder) / study.name
        train = study.spec["train"]
        row = {"study": study.name, "method": label(study.method, study.select_on),
               "select_on": study.select_on, "seed": study.seed, "seconds": times.get(study.name),
               "model_steps": study.trials * study.spec["study"]["replicates"] *
               train["steps"], "trials": study.trials, "finished": 0}
        if where.is_dir():
            loaded = load_results(where)
            row["finished"] = int(loaded.trials["finished"].astype(bool).sum()) \
                if len(loaded.trials) else 0
            points[study.name] = loaded.results
            for task in tasks:
                mine = usable(loaded.results, task) if len(loaded.results) else loaded.results
                row[f"hv_{task}"] = hypervolume(
                    mine[f"disentanglement_{task}"].to_numpy(float) if len(mine) else [],
                    mine["recon_test"].to_numpy(float) if len(mine) else [],
                    box.recon_reference, box.floor(task)) / box.area(task)
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(study_columns(tasks))), points


def method_rows(studies: pd.DataFrame, task: str) -> list[dict[str, Any]]:
    """Per method, its mean hypervolume over search seeds with the t-interval, largest first,
    and what it cost (mean wall seconds per study)."""
    out = []
    for method, mine in studies.groupby("method", sort=False):
        found = inference.t_interval(mine[f"hv_{task}"].to_numpy(float))
        seconds = pd.to_numeric(mine["seconds"], errors="coerce")
        out.append({"method": method, "mean": found.estimate, "ci_low": found.low,
                    "ci_high": found.high, "n_seeds": found.n,
                    "seconds_per_study": float(seconds.mean()) if seconds.notna().any()
                    else math.nan})
    return sorted(out, key=lambda r: -r["mean"] if math.isfinite(r["mean"]) else math.inf)


def pair_rows(studies: pd.DataFrame, task: str, methods: list[str]) -> list[dict[str, Any]]:
    """Every pair of `methods` on one task, the larger mean first: the difference of mean
    hypervolumes with Welch's interval and the exact permutation p (uncorrected)."""
    hv = {m: studies.loc[studies["method"] == m, f"hv_{task}"].to_numpy(float) for m in methods}
    ranked = sorted(methods, key=lambda m: -np.nanmean(hv[m]) if np.isfinite(hv[m]).any()
                    else math.inf)
    out = []
    for i, better in enumerate(ranked):
        for worse in ranked[i + 1:]:
            out.append(_difference(hv[better], hv[worse], better=better, worse=worse))
    return out


def bias_rows(studies: pd.DataFrame, task: str) -> list[dict[str, Any]]:
    """Per method that ran both selections: test-selected minus validation-selected
    hypervolume (on the test measures), Welch's interval and the permutation p."""
    out = []
    for tested in sorted(m for m in studies["method"].unique() if m.endswith("@test")):
        base = tested.removesuffix("@test")
        if base not in set(studies["method"]):
            continue
        a = studies.loc[studies["method"] == tested, f"hv_{task}"].to_numpy(float)
        b = studies.loc[studies["method"] == base, f"hv_{task}"].to_numpy(float)
        out.append(_difference(a, b, method=base))
    return out


def _difference(a: np.ndarray, b: np.ndarray, **names: str) -> dict[str, Any]:
    found = inference.difference_interval(a, b, paired=False)
    return {**names, "difference": found.estimate, "ci_low": found.low, "ci_high": found.high,
            "p_value": inference.permutation_p(a, b, paired=False)}


def with_holm(rows_by_task: dict[str, list[dict[str, Any]]]) -> None:
    """Holm's correction over every row of every task, in place (`holm_p`)."""
    flat = [row for rows in rows_by_task.values() for row in rows]
    for row, adjusted in zip(flat, inference.holm([r["p_value"] for r in flat]), strict=True):
        row["holm_p"] = adjusted


def analyse(folder: Path, comparison: dict[str, Any], studies: list[Any],
            times: dict[str, float]) -> tuple[Outcome, dict[str, pd.DataFrame]]:
    """Everything the comparison's report states, as data (no drawing)."""
    box, tasks = Box.from_spec(comparison), study_tasks(comparison)
    table, points = study_table(folder, studies, box, times, tasks)
    validated = [m for m in dict.fromkeys(table["method"]) if not m.endswith("@test")]
    methods = {task: method_rows(table, task) for task in tasks}
    pairs = {task: pair_rows(table, task, validated) for task in tasks}
    bias = {task: bias_rows(table, task) for task in tasks}
    with_holm(pairs)
    with_holm(bias)
    outcome = Outcome(Path(folder) / "report", table, methods, pairs, bias)
    outcome.answer = answer_lines(outcome, len(validated))
    return outcome, points


def answer_lines(outcome: Outcome, n_methods: int) -> list[str]:
    """One line per task: the largest front, against the runner-up, and whether any pair is
    distinguishable; then one line per task on the selection's bias, where measured."""
    lines = []
    for task in outcome.methods:
        ranked = [r for r in outcome.methods[task] if not r["method"].endswith("@test")]
        if not ranked or not math.isfinite(ranked[0]["mean"]):
            lines.append(f"{task}: no study has finished yet")
            continue
        best = ranked[0]
        line = (f"{task}: {best['method']} has the largest front, hypervolume "
                f"{best['mean']:.3f} [{best['ci_low']:.3f}, {best['ci_high']:.3f}] over "
                f"{best['n_seeds']} seeds")
        if len(ranked) > 1:
            runner_up = next(p for p in outcome.pairs[task]
                             if p["better"] == best["method"] and p["worse"] == ranked[1]["method"])
            line += (f"; {_signed(runner_up['difference'])} [{_signed(runner_up['ci_low'])}, "
                     f"{_signed(runner_up['ci_high'])}] over {runner_up['worse']}, Holm p = "
                     f"{runner_up['holm_p']:.2g}")
            called = [p for p in outcome.pairs[task] if p["holm_p"] < inference.ALPHA]
            n_seeds = min(r["n_seeds"] for r in ranked)
            floor = inference.smallest_p(n_seeds, n_seeds, paired=False)
            tests = len(outcome.pairs[task]) * len(outcome.pairs)
            if called:
                line += "; distinguishable: " + ", ".join(
                    f"{p['better']} > {p['worse']}" for p in called)
            elif floor * tests >= inference.ALPHA:
                line += (f"; no pair can be told apart with {n_seeds} seeds "
                         f"({inference.fewest_replicates(tests, False)} are the fewest)")
            else:
                line += "; no pair of methods is distinguishable"
        lines.append(line)
    for task, rows in outcome.bias.items():
        for row in rows:
            lines.append(f"{task} selection bias of {row['method']} (selected on test minus "
                         f"on validation, scored on test): {_signed(row['difference'])} "
                         f"[{_signed(row['ci_low'])}, {_signed(row['ci_high'])}], Holm p = "
                         f"{row['holm_p']:.2g}")
    return lines


def _signed(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "n/a"


def write(folder: Path, comparison: dict[str, Any], studies: list[Any],
          times: dict[str, float]) -> Outcome:
    """Write `<comparison>/report/`: comparison.md, comparison.json, studies.csv and
    fronts_<task>.png of the primary task (dSprites: fronts_5var.png; each file replaced
    atomically); return the outcome."""
    outcome, points = analyse(folder, comparison, studies, times)
    out = outcome.path
    out.mkdir(parents=True, exist_ok=True)
    experiment.write_atomic(out / "studies.csv", outcome.studies.to_csv(index=False))
    summary = {"answer": outcome.answer, "box": Box.from_spec(comparison).describe(),
               "compare": comparison["compare"], "methods": outcome.methods,
               "pairs": outcome.pairs, "selection_bias": outcome.bias,
               "studies": json.loads(outcome.studies.to_json(orient="records"))}
    experiment.write_atomic(out / "comparison.json", json.dumps(summary, indent=1))
    experiment.write_atomic(out / "comparison.md", markdown(outcome, comparison))
    task = study_primary_task(comparison)
    figure = fronts_figure(outcome.studies, points, Box.from_spec(comparison), task)
    with tempfile.NamedTemporaryFile(dir=out, suffix=".png", delete=False) as tmp:
        figure.savefig(tmp.name)
    os.replace(tmp.name, out / f"fronts_{task}.png")
    return outcome


def markdown(outcome: Outcome, comparison: dict[str, Any]) -> str:
    """The report as Markdown: the answer lines, then per task the methods and the pairs."""
    table = comparison["compare"]
    box = Box.from_spec(comparison)
    lines = ["# Searches at equal compute", "",
             *[f"- {line}" for line in outcome.answer], "",
             f"Family {table['family']}; methods {', '.join(table['methods'])}; "
             f"{table['search_seeds']} search seeds; {table['trials']} trials each "
             f"(equal model-steps per study); fronts on the test measures in the box "
             f"{box.describe()}; searches selected on {', '.join(table['select_on'])}.", ""]
    for task in outcome.methods:
        lines += [f"## {task}", "", "| method | mean HV | 95 % interval | seeds | s per study |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['mean']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                  f"| {r['n_seeds']} | {r['seconds_per_study']:.0f} |"
                  for r in outcome.methods[task]]
        lines += ["", "| better | worse | difference | Welch 95 % | p | Holm p |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {p['better']} | {p['worse']} | {_signed(p['difference'])} | "
                  f"[{_signed(p['ci_low'])}, {_signed(p['ci_high'])}] | {p['p_value']:.3g} | "
                  f"{p['holm_p']:.3g} |" for p in outcome.pairs[task]]
        lines.append("")
    lines += [f"![fronts](fronts_{study_primary_task(comparison)}.png)", ""]
    return "\n".join(lines)


def fronts_figure(studies: pd.DataFrame, points: dict[str, pd.DataFrame], box: Box,
                  task: str) -> Figure:
    """One panel per method: each search seed's final front (test measures) as a step line."""
    methods = list(dict.fromkeys(studies["method"]))
    fig = Figure(figsize=(3.2 * len(methods), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharex=True, sharey=True))
    score = f"disentanglement_{task}"
    for ax, method in zip(axes, methods, strict=True):
        mine = studies[studies["method"] == method]
        for shade, name in zip(np.linspace(0.35, 0.95, len(mine)), mine["study"], strict=True):
            rows = points.get(name)
            if rows is None or not len(rows):
                continue
            rows = usable(rows, task)
            d, r = rows[score].to_numpy(float), rows["recon_test"].to_numpy(float)
            front = nondominated_mask(d, r)
            order = np.argsort(r[front])
            ax.step(r[front][order], d[front][order], where="post",
                    color=(0.1, 0.2, shade), alpha=0.9)
            ax.plot(r, d, ".", color=(0.1, 0.2, shade), alpha=0.25, markersize=3)
        ax.set_title(method)
        ax.set_xlim(0, box.recon_reference)
        ax.set_xlabel("test reconstruction error (nats)")
    axes[0].set_ylabel(f"test disentanglement ({task})")
    return fig
