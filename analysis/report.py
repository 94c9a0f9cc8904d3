"""Write an experiment's report folder: HTML, Markdown, summary.json, CSVs and figures.

``write_report`` works on any experiment folder: finished, partly finished (trials without
evaluations are listed, their rows absent), or empty (a valid report saying "no finished
trials yet"). The folder is built in a temporary sibling and swapped in at the end, so a crash
never leaves a half-written report. What the report states comes from `analysis.summary`
(data, no drawing); the figures that need trained models from `analysis.model_figures`; this
module renders the sections and writes the folder.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures, search_progress
from analysis.aggregate import BEST_TASK, THRESHOLD_4VAR, THRESHOLD_TASK, Headline, mean_std
from analysis.box import Box
from analysis.comparison import Comparison, compare
from analysis.document import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Preformatted,
    Table,
    to_html,
    to_markdown,
)
from analysis.model_figures import model_figures
from analysis.provenance import footer_lines
from analysis.results import RECON_SAMPLE, StudyResults, load_results, metric_columns
from analysis.summary import (
    NO_RESULTS,
    Analysis,
    TaskAnalysis,
    analyse,
    baseline_table,
    counts,
    jsonable,
    summary_data,
)
from trainables import experiment
from trainables.columns import task_title


def write_report(
    experiment_dir: str | Path,
    out_dir: str | Path | None = None,
    data: Any = None,
    *,
    compare_with: str | Path | None = None,
) -> Path:
    """Write the report folder (default ``<experiment_dir>/report``) and return its path.

    ``data`` is the dSprites object (``trainables.data.load``) Figure 2 and the traversals
    need; ``None`` skips them with a note. ``compare_with``: another experiment folder whose
    fronts the report shows beside this one's, in one box (e.g. the grid a PBT population
    extends).
    """
    study = load_results(experiment_dir)
    other = load_results(compare_with) if compare_with is not None else None
    out = Path(out_dir) if out_dir is not None else study.experiment_dir / "report"
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*out.parent.glob(f".{out.name}.tmp-*"), *out.parent.glob(f".{out.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a writer that was killed
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _build(study, tmp, data, other)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def answer_lines(report_dir: Path) -> list[str]:
    """The report's answer, one line per task, as its summary.json states it: what the
    commands print before the report's path, without analysing the study again."""
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    return list(summary["answer_lines"].values())


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` with ``tmp`` by renames: readers see the old or the new report."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(study: StudyResults, folder: Path, data: Any,
           other: StudyResults | None = None) -> None:
    found = analyse(study)
    study.results.to_csv(folder / "results.csv", index=False)
    for task, analysis in found.tasks.items():
        analysis.fronts.to_csv(folder / f"pareto_{task}.csv", index=False)
    figure_blocks = _figure1(study, found.tasks, folder, found.box.recon_reference)
    model_blocks = model_figures(study, data, folder, found.notes)
    curves = figures.training_curves(study.curves, folder / "training_curves.png")

    blocks: list[Block] = [
        *([Paragraph(found.caveat, strong=True)] if found.caveat else []),
        *(Paragraph(line, strong=True) for line in found.answer_lines.values()),
        *(Paragraph(text, strong=True) for text in found.answers.values()),
        Paragraph(_status(counts(study))),
        Heading("Headline numbers beside the paper"),
        *_headline_blocks(found.heads, study.tasks, study.recon_measure),
        Heading("Pareto fronts and hypervolumes"),
        *_front_blocks(found),
        *figure_blocks,
        *_search_blocks(study, found.box, folder),
        *(_comparison_blocks(compare(study, other), folder, study.primary_task)
          if other else []),
        Heading("Aggregated results (the paper's rule)"),
        *_aggregate_blocks(found.tasks),
        Heading("Untrained baseline (step 0)"),
        *_baseline_blocks(study),
        Heading("Figure 2 and latent traversals"),
        *model_blocks,
        Heading("Training curves"),
        Image(curves, "Training loss against step, one line per trial."),
        Heading("Diverged members"),
        *_diverged_blocks(study),
        Heading("Trials"),
        Table(_trials_table(study)),
        Heading("Notes"),
        Bullets(found.notes or ["none"]),
        Heading("Study spec (study.toml)"),
        Preformatted(study.spec_text) if study.spec_text else Paragraph("No study.toml found."),
        Heading("Provenance"),
        Bullets(footer_lines(found.provenance)),
    ]
    title = f"WAE / β-VAE disentanglement study: {study.name}"
    (folder / "index.html").write_text(to_html(title, blocks), encoding="utf-8")
    (folder / "report.md").write_text(to_markdown(title, blocks), encoding="utf-8")
    (folder / "summary.json").write_text(
        json.dumps(jsonable(summary_data(study, found)), indent=2,
                   allow_nan=False) + "\n", encoding="utf-8")


def _search_blocks(study: StudyResults, box: Box, folder: Path) -> list[Block]:
    """For an adaptive or PBT study: how the search advanced (and PBT's schedules)."""
    search = study.spec.get("study", {}).get("search")
    if search not in ("adaptive", "pbt"):
        return []
    where = (f"Hypervolume of the front on the {task_title(study.primary_task)}, normalised, "
             f"in the study's box ({box.describe()}).")
    if search == "adaptive":
        progress = search_progress.trial_progress(study.results, study.trials, study.curves,
                                                  box, study.primary_task)
        path = figures.hypervolume_progress(progress, "trials finished", study.primary_task,
                                            folder / "search_progress.png")
        progress.to_csv(folder / "search_progress.csv", index=False)
        return [Heading("Search progress"),
                Image(path, f"{where} After each trial finished (in the order they finished), "
                            "the front of the finished trials' final evaluations, every "
                            "member a point.")]
    pbt = study.spec.get("pbt", {})
    progress = search_progress.pbt_progress(study.curves, box, study.primary_task)
    progress.to_csv(folder / "search_progress.csv", index=False)
    schedule = search_progress.schedules(study.curves)
    schedule.to_csv(folder / "pbt_schedules.csv", index=False)
    clones = search_progress.clones(study.curves)
    final = (search_progress.final_objective(study.curves, pbt, study.primary_task) if pbt
             else {})
    ranks = search_progress.rank_labels(experiment.read_pbt_state(study.experiment_dir))
    schedule_png = figures.pbt_schedules(schedule, final, ranks, folder / "pbt_schedules.png")
    progress_png = figures.hypervolume_progress(progress, "step", study.primary_task,
                                                folder / "search_progress.png")
    objective = (f"{pbt.get('objective')} (see study.toml's [pbt] table)" if pbt
                 else "unknown")
    exploit = ("F1 #2: front 1, second in MO-PBT's spread order; [pbt] exploit = \"pareto\""
               if pbt.get("exploit") == "pareto" else "#2: second by the objective")
    return [
        Heading("Population-based training"),
        Paragraph(f"Each line is one trial: the value it trained with at each step; a dot "
                  f"marks a clone (the trial copied a better trial's weights and continued "
                  f"with a perturbed value). Colour: the trial's objective at its last "
                  f"evaluation, {objective}. At a line's end, the trial's rank in its family "
                  f"when the scheduler last ranked it ({exploit}). The fronts above are the "
                  f"population's final models, each at the value it ended with "
                  f"(pbt_schedules.csv has every step)."),
        Image(schedule_png, "PBT schedules: value against step, per trial."),
        Table(clones.assign(value=clones["value"].map(_g)) if len(clones)
              else pd.DataFrame({"clones": ["none yet"]})),
        Heading("Search progress", 3),
        Image(progress_png, f"{where} At each evaluation step, the front of the population's "
                            "evaluations at that step, one point per trial (the mean over its "
                            "members); steps before the last use the cheaper interim "
                            "evaluation (train.interim_*)."),
    ]


def _comparison_blocks(found: Comparison, folder: Path, task: str) -> list[Block]:
    """This study's fronts beside another study's, in one box; the figure's on `task` (this
    study's primary task)."""
    same = ("the other study was run with the same box, so the two reports' hypervolumes "
            "compare too" if found.same_box else
            f"{found.other} was run with another box: its own report's hypervolumes do not "
            "compare with this one's; these do")
    blocks: list[Block] = [
        Heading(f"Beside {found.other}"),
        Paragraph(f"Each family's front in this study and in {found.other}, labelled "
                  f"'family · study', measured in this study's box ({found.box.describe()}); "
                  f"{same}. Mean over single-seed sweeps with its 95 % t-interval."),
    ]
    for name, hv in found.hypervolumes.items():
        found.fronts[name].to_csv(folder / f"compared_pareto_{name}.csv", index=False)
        blocks += [Heading(task_title(name), 3), Table(pd.DataFrame({
            "front": hv["front"],
            "mean hypervolume (norm)": hv["mean_norm"].map(_fmt),
            "95 % CI": [f"{_fmt(a)}–{_fmt(b)}" for a, b in
                        zip(hv["ci_low_norm"], hv["ci_high_norm"], strict=True)],
            "pooled front (norm)": hv["pooled_norm"].map(_fmt),
            "front points": hv["n_front"],
            "models": hv["n_models"],
        }))]
    path = figures.compared_fronts(found.fronts[task], task, found.box.recon_reference,
                                   folder / f"compared_fronts_{task}.png")
    return [*blocks, Image(path, f"Fronts on the {task_title(task)} of this study (solid) and "
                                 f"{found.other} (dashed), one colour per family.")]


def _status(n: dict[str, int]) -> str:
    text = (
        f"{n['trials']} trial folders: {n['trials_finished']} finished, "
        f"{n['trials_evaluated']} with an evaluation after step 0; {n['healthy_models']} "
        f"healthy models evaluated; diverged members: {n['diverged_members']}."
    )
    if n["trials_unfinished_evaluated"]:
        text += (
            f" {n['trials_unfinished_evaluated']} unfinished trials enter with their latest "
            "(intermediate) evaluation; the step column of results.csv says which."
        )
    if n["rows"] == 0:
        text += " " + NO_RESULTS
    return text


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: Any) -> str:
    """A p-value with three significant digits (0.000155, not 0.000)."""
    return "–" if value is None or pd.isna(value) else f"{value:.3g}"


def _g(value: Any) -> str:
    """A hyperparameter value or count as written by hand (30, 0.5), "–" when missing."""
    return "–" if value is None or pd.isna(value) else f"{value:g}"


def _digits(column: str) -> int:
    return 1 if column.startswith("recon") else 3


def _headline_blocks(heads: list[Headline], tasks: tuple[str, ...],
                     recon_measure: str = RECON_SAMPLE) -> list[Block]:
    """The paper's headline statistics of the study's `tasks` that it has (`BEST_TASK`,
    `THRESHOLD_TASK`: dSprites' 5var and 4var)."""
    measure = Paragraph(
        f"Reconstruction errors here decode the {recon_measure} of each test or training "
        "image (Bernoulli cross-entropy summed over pixels, nats)"
        + (", the measure of the paper's numbers beside them: like with like."
           if recon_measure == RECON_SAMPLE else
           "; the paper's numbers decode one posterior sample and are higher: these columns "
           "do not compare like with like.")
        + " The posterior-mean errors are the recon_test_mean / recon_train_mean columns of "
        "results.csv."
    )
    reading = Paragraph(
        "Our reading of the paper's rules. A model is one (trial, replicate); its score is the "
        "mean over its metric calculations. Best 5-var: the model with the highest 5-var "
        "score; its own test recon, and its hyperparameter value's test recon mean ± std over "
        "the rows kept by the paper's aggregation (top 50 %). Lowest training recon among "
        f"models scoring > {THRESHOLD_4VAR:.0%} on 4-var: per value, mean ± std of the "
        "qualifying models' training recon; the value with the lowest mean is shown (n = "
        "qualifying models), then the single lowest model. The paper's 'WAE' numbers are "
        "shown beside both WAE families (its Figure 2 uses the Gaussian WAE)."
    )
    missing = [task for task in (BEST_TASK, THRESHOLD_TASK) if task not in tasks]
    if missing:
        reading = Paragraph(reading.text + " This study's dataset has no "
                            + " or ".join(missing) + " task: those statistics are not shown.")
    if not heads:
        return [Paragraph(NO_RESULTS), measure, reading]
    rows = [{
        "family": h.family,
        **({"best 5-var": _fmt(h.best_5var),
            "paper 5-var": _fmt(h.paper_best_5var),
            "value": _g(h.best_5var_value),
            "its test recon": _fmt(h.best_5var_model_recon_test, 1),
            "value's test recon": mean_std(h.best_5var_value_recon_test_mean,
                                           h.best_5var_value_recon_test_std),
            "paper test recon": _fmt(h.paper_best_5var_recon_test)}
           if BEST_TASK in tasks else {}),
        **({"lowest train recon, > 98 % 4-var": mean_std(h.recon_train_98_mean,
                                                         h.recon_train_98_std),
            "at value (n)": f"{_g(h.recon_train_98_value)} ({_g(h.recon_train_98_n_models)})",
            "lowest model": _fmt(h.recon_train_98_lowest_model, 1),
            "paper train recon": _fmt(h.paper_recon_train_98)}
           if THRESHOLD_TASK in tasks else {}),
    } for h in heads]
    return [Table(pd.DataFrame(rows)), measure, reading]


def _front_blocks(found: Analysis) -> list[Block]:
    box = found.box
    blocks: list[Block] = [Paragraph(
        "Fronts are the non-dominated healthy rows of results.csv (higher disentanglement, "
        "lower test recon), per family and over all families ("
        + ", ".join(f"pareto_{task}.csv" for task in found.tasks)
        + "). Hypervolume: the area a front dominates in the study's box, "
        f"{box.describe()}, fixed in study.toml's [report] table before the study ran, "
        "divided by the box's area. The replicate is the unit: each replicate index r of a "
        "family is one single-seed sweep of its values, whose front has hypervolume HV(r); "
        "'mean' is the mean of HV(r) with its 95 % Student-t interval, 'pooled' the front of "
        "all replicates together (the study's best front, no interval). Differences: Welch's "
        "interval (independent seeds) or the paired t-interval (paired seeds), and an exact "
        "permutation test; a family is called better only where that test rejects at 5 % "
        f"after Holm's correction over all {found.n_tests} tests (pairs × tasks)."
    )]
    for task, analysis in found.tasks.items():
        blocks.append(Heading(task_title(task), 3))
        hv = analysis.hypervolumes
        if hv.empty:
            blocks.append(Paragraph(NO_RESULTS))
            continue
        single = analysis.replicates <= 1
        blocks.append(Table(pd.DataFrame({
            "front": hv["front"],
            "mean hypervolume (norm)": hv["mean_norm"].map(_fmt),
            "95 % CI": ["none: one replicate per value" if single else f"{_fmt(a)}–{_fmt(b)}"
                        for a, b in zip(hv["ci_low_norm"], hv["ci_high_norm"], strict=True)],
            "replicates": hv["n_replicates"],
            "pooled front (norm)": hv["pooled_norm"].map(_fmt),
            "front points": hv["n_front"],
            "models": hv["n_models"],
        })))
        pairs = analysis.comparisons
        if pairs:
            blocks.append(Table(pd.DataFrame({
                "larger mean": [c["better"] for c in pairs],
                "than": [c["worse"] for c in pairs],
                "difference (norm)": [_fmt(c["difference_norm"]) for c in pairs],
                "95 % CI": ["none" if single else f"{_fmt(c['difference_ci_low_norm'])}–"
                            f"{_fmt(c['difference_ci_high_norm'])} ({c['interval']})"
                            for c in pairs],
                "p (permutation)": [_p(c["p_value"]) for c in pairs],
                "p (Holm)": [_p(c["p_holm"]) for c in pairs],
                "verdict": ["better" if c["distinguishable"] else "not distinguishable"
                            for c in pairs],
            })))
        if not analysis.sensitivity.empty and not single:
            sens = analysis.sensitivity
            blocks.append(Paragraph(
                "How the difference depends on the box: the same pairs with the recon "
                "reference at 0.5-2× the study's (the floor unchanged; uncorrected p)."))
            blocks.append(Table(pd.DataFrame({
                "recon reference": sens["recon_reference"].map(lambda v: _fmt(v, 0)),
                "pair": sens["better"] + " − " + sens["worse"],
                "difference (norm)": sens["difference_norm"].map(_fmt),
                "95 % CI": [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(
                    sens["difference_ci_low_norm"], sens["difference_ci_high_norm"],
                    strict=True)],
                "p (permutation)": sens["p_value"].map(_p),
            })))
        if len(analysis.domination) > 1:
            shares = analysis.domination.map(lambda v: f"{v:.0%}")
            shares.insert(0, "pooled front of ↓ dominated by →", shares.index)
            blocks.append(Table(shares.reset_index(drop=True)))
    return blocks


def _figure1(
    study: StudyResults, tasks: dict[str, TaskAnalysis], folder: Path, reference: float
) -> list[Block]:
    blocks: list[Block] = []
    for task, analysis in tasks.items():
        path = figures.figure1(
            study.results, study.baseline, analysis.fronts, task,
            folder / f"figure1_{task}.png", reference,
        )
        blocks.append(Image(path, (
            f"Figure 1, {task_title(task)}: faint dots are the rows kept by the "
            "paper's aggregation, large markers their mean ± std per hyperparameter value, "
            "step lines the Pareto fronts, the dashed band the untrained (step 0) score."
        )))
    return blocks


def _aggregate_blocks(tasks: dict[str, TaskAnalysis]) -> list[Block]:
    blocks: list[Block] = [Paragraph(
        "Per (family, value) and task: the healthy replicate × calculation rows, the bottom "
        "50 % by that task's disentanglement dropped (ceil(n/2) kept), mean ± sample std "
        "of what is kept. Diverged members are excluded."
    )]
    for task, analysis in tasks.items():
        blocks.append(Heading(task_title(task), 3))
        agg = analysis.aggregated
        if agg.empty:
            blocks.append(Paragraph(NO_RESULTS))
            continue
        metrics = [c[: -len("_mean")] for c in agg.columns if c.endswith("_mean")]
        table = pd.DataFrame({
            "family": agg["family"],
            "param": agg["param"],
            "value": agg["value"].map(_g),
            "kept / rows": [f"{k} / {n}" for k, n in
                            zip(agg["n_kept"], agg["n_rows"], strict=True)],
        })
        for m in metrics:
            table[m] = [mean_std(a, b, _digits(m)) for a, b in
                        zip(agg[f"{m}_mean"], agg[f"{m}_std"], strict=True)]
        blocks.append(Table(table))
    return blocks


def _baseline_blocks(study: StudyResults) -> list[Block]:
    table = baseline_table(study.baseline)
    intro = Paragraph(
        "Scores of the untrained encoders (step 0) with the same metric protocol: the Higgins "
        "metric is far above chance even for an untrained encoder, so read every score "
        "against this line."
    )
    if table.empty:
        return [intro, Paragraph("No step-0 evaluations found.")]
    shown = table[["family", "n_rows"]].copy()
    for m in metric_columns(study.baseline):
        shown[m] = [mean_std(a, b, _digits(m)) for a, b in
                    zip(table[f"{m}_mean"], table[f"{m}_std"], strict=True)]
    return [intro, Table(shown)]


def _diverged_blocks(study: StudyResults) -> list[Block]:
    if study.diverged.empty:
        return [Paragraph("None.")]
    table = study.diverged.copy()
    table["value"] = table["value"].map(_g)
    table["diverged_at"] = table["diverged_at"].map(lambda v: _fmt(v, 0))
    return [
        Paragraph("Kept in results.csv with diverged = True, left out of aggregation and fronts."),
        Table(table.astype(str)),
    ]


def _trials_table(study: StudyResults) -> pd.DataFrame:
    trials = study.trials.drop(columns=["path", "seeds", "devices", "precision_reason"])
    if trials.empty:
        return pd.DataFrame({"trials": ["none found"]})
    return trials.map(lambda v: _g(v) if isinstance(v, float) or v is pd.NA else str(v))
