"""Write an experiment's report folder: HTML, Markdown, summary.json, CSVs and figures.

``write_report`` works on any experiment folder: finished, partly finished (trials without
evaluations are listed, their rows absent), or empty (a valid report saying "no finished
trials yet"). The folder is built in a temporary sibling and swapped in at the end, so a crash
never leaves a half-written report. Figures that need trained models (Figure 2, latent
traversals) are skipped with a note when no dataset is given or a checkpoint cannot be loaded.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures, models
from analysis.aggregate import PAPER, THRESHOLD_4VAR, aggregate, headline, mean_std, picks
from analysis.caveats import training_caveat
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
from analysis.pareto import (
    BOX_MARGIN,
    compare,
    domination_shares,
    hypervolume_table,
    pareto_rows,
    reference_recon,
)
from analysis.provenance import footer_lines, report_provenance
from analysis.results import (
    RECON_SAMPLE,
    TASKS,
    StudyResults,
    families_in,
    load_results,
    metric_columns,
    read_config,
    usable,
)

FIGURE_SEED = 0  # which test images Figure 2 and the traversals show
N_FIGURE_IMAGES = 10
N_CONTEXT_IMAGES = 256  # test images whose codes set each latent's traversal range
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
    name = figures.TASK_TITLE[analysis.task]
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


def write_report(
    experiment_dir: str | Path,
    out_dir: str | Path | None = None,
    data: Any = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write the report folder (default ``<experiment_dir>/report``) and return its path.

    ``data`` is the dSprites object (``trainables.data.load``) Figure 2 and the traversals
    need; ``None`` skips them with a note. ``n_boot`` resamples (seeded with ``seed``) give
    the hypervolume CIs.
    """
    study = load_results(experiment_dir)
    out = Path(out_dir) if out_dir is not None else study.experiment_dir / "report"
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*out.parent.glob(f".{out.name}.tmp-*"), *out.parent.glob(f".{out.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a writer that was killed
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _build(study, tmp, data, n_boot, seed)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` with ``tmp`` by renames: readers see the old or the new report."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(study: StudyResults, folder: Path, data: Any, n_boot: int, seed: int) -> None:
    results = study.results
    reference = reference_recon(results)
    tasks = {t: analyse_task(results, t, reference, n_boot, seed) for t in TASKS}
    heads = headline(results)
    notes = list(study.warnings)

    results.to_csv(folder / "results.csv", index=False)
    for task, analysis in tasks.items():
        analysis.fronts.to_csv(folder / f"pareto_{task}.csv", index=False)
    figure_blocks = _figure1(study, tasks, folder, reference)
    model_blocks = _model_figures(study, data, folder, notes)
    curves = figures.training_curves(study.curves, folder / "training_curves.png")

    answers = {task: answer(analysis) for task, analysis in tasks.items()}
    train = _train_table(study)
    caveat = training_caveat(study.trials, study.curves, train)
    origin = report_provenance(study.experiment_dir, train, study.trials.to_dict("records"))
    if study.recon_measure != RECON_SAMPLE:
        notes.append(f"recon_test / recon_train of this experiment decode the "
                     f"{study.recon_measure} (written before the sampled measure): lower "
                     "than the seed's numbers, which decode one posterior sample per image.")
    blocks: list[Block] = [
        *([Paragraph(caveat, strong=True)] if caveat else []),
        *(Paragraph(text, strong=True) for text in answers.values()),
        Paragraph(_status(counts(study))),
        Heading("Headline numbers beside the paper"),
        *_headline_blocks(heads, study.recon_measure),
        Heading("Pareto fronts and hypervolumes"),
        *_front_blocks(tasks, reference, n_boot, seed),
        *figure_blocks,
        Heading("Aggregated results (the paper's rule)"),
        *_aggregate_blocks(tasks),
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
        Bullets(notes or ["none"]),
        Heading("Study spec (study.toml)"),
        Preformatted(study.spec_text) if study.spec_text else Paragraph("No study.toml found."),
        Heading("Provenance"),
        Bullets(footer_lines(origin)),
    ]
    title = f"WAE / β-VAE disentanglement study: {study.name}"
    (folder / "index.html").write_text(to_html(title, blocks), encoding="utf-8")
    (folder / "report.md").write_text(to_markdown(title, blocks), encoding="utf-8")
    summary = {"caveat": caveat, "recon_measure": study.recon_measure,
               **_summary(study, tasks, heads, answers, reference, notes, n_boot, seed),
               "provenance": origin}
    (folder / "summary.json").write_text(
        json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8"
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


def _g(value: Any) -> str:
    """A hyperparameter value or count as written by hand (30, 0.5), "–" when missing."""
    return "–" if value is None or pd.isna(value) else f"{value:g}"


def _digits(column: str) -> int:
    return 1 if column.startswith("recon") else 3


def _train_table(study: StudyResults) -> dict[str, Any]:
    """study.toml's [train] table ({} when missing or unreadable)."""
    try:
        return dict(tomllib.loads(study.spec_text or "").get("train", {}))
    except tomllib.TOMLDecodeError:
        return {}


def _headline_blocks(heads: pd.DataFrame, recon_measure: str = RECON_SAMPLE) -> list[Block]:
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
    if heads.empty:
        return [Paragraph(NO_RESULTS), measure, reading]
    rows = []
    for _, h in heads.iterrows():
        paper = PAPER.get(h["family"], {})
        rows.append({
            "family": h["family"],
            "best 5-var": _fmt(h.get("best_5var")),
            "paper 5-var": _fmt(paper.get("best_5var")),
            "value": _g(h.get("best_5var_value")),
            "its test recon": _fmt(h.get("best_5var_model_recon_test"), 1),
            "value's test recon": mean_std(
                h.get("best_5var_value_recon_test_mean"), h.get("best_5var_value_recon_test_std")
            ),
            "paper test recon": paper.get("best_5var_recon_test", "–"),
            "lowest train recon, > 98 % 4-var": mean_std(
                h.get("recon_train_98_mean"), h.get("recon_train_98_std")
            ),
            "at value (n)": f"{_g(h.get('recon_train_98_value'))} "
            f"({_g(h.get('recon_train_98_n_models'))})",
            "lowest model": _fmt(h.get("recon_train_98_lowest_model"), 1),
            "paper train recon": paper.get("recon_train_98", "–"),
        })
    return [Table(pd.DataFrame(rows)), measure, reading]


def _front_blocks(
    tasks: dict[str, TaskAnalysis], reference: float, n_boot: int, seed: int
) -> list[Block]:
    blocks: list[Block] = [Paragraph(
        "Fronts are the non-dominated healthy rows of results.csv (higher disentanglement, "
        "lower test recon), per family and over all families (pareto_4var.csv, "
        "pareto_5var.csv). Hypervolume: area dominated inside disentanglement [0, 1] × test "
        f"recon [0, {_fmt(reference, 1)}], reference point (0, {_fmt(reference, 1)}) = "
        f"{BOX_MARGIN} × the largest healthy test recon of the study; 'norm' divides by the "
        f"box area. CIs: {n_boot} bootstrap resamples (seed {seed}) of the replicates within "
        "each (family, value), fronts recomputed, 95 % percentile interval. A resample can "
        "only lose points, so the upper end is the estimate itself: the CI shows how much a "
        "front rests on single replicates. The paired CI of a difference takes both fronts "
        "from the same resamples. Two fronts whose single CIs overlap are called not "
        "distinguishable."
    )]
    for task, analysis in tasks.items():
        blocks.append(Heading(figures.TASK_TITLE[task], 3))
        hv = analysis.hypervolumes
        if hv.empty:
            blocks.append(Paragraph(NO_RESULTS))
            continue
        blocks.append(Table(pd.DataFrame({
            "front": hv["front"],
            "hypervolume (norm)": hv["hypervolume_norm"].map(_fmt),
            "95 % CI (norm)": [f"{_fmt(a)}–{_fmt(b)}" if analysis.replicates > 1
                               else "none: one replicate per value" for a, b in
                               zip(hv["ci_low_norm"], hv["ci_high_norm"], strict=True)],
            "hypervolume": hv["hypervolume"].map(lambda v: _fmt(v, 2)),
            "front points": hv["n_front"],
            "models": hv["n_models"],
        })))
        if analysis.comparisons:
            blocks.append(Table(pd.DataFrame({
                "larger front": [c["better"] for c in analysis.comparisons],
                "than": [c["worse"] for c in analysis.comparisons],
                "difference (norm)": [_fmt(c["difference_norm"]) for c in analysis.comparisons],
                "paired 95 % CI": [
                    f"{_fmt(c['difference_ci_low_norm'])}–{_fmt(c['difference_ci_high_norm'])}"
                    if analysis.replicates > 1 else "none: one replicate per value"
                    for c in analysis.comparisons
                ],
                "single CIs overlap": ["–" if analysis.replicates <= 1
                                       else "yes" if c["cis_overlap"] else "no"
                                       for c in analysis.comparisons],
            })))
        if len(analysis.domination) > 1:
            shares = analysis.domination.map(lambda v: f"{v:.0%}")
            shares.insert(0, "front of ↓ dominated by →", shares.index)
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
            f"Figure 1, {figures.TASK_TITLE[task]}: faint dots are the rows kept by the "
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
        blocks.append(Heading(figures.TASK_TITLE[task], 3))
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
    trials = study.trials.drop(columns=["path", "seeds", "devices"])
    if trials.empty:
        return pd.DataFrame({"trials": ["none found"]})
    return trials.map(lambda v: _g(v) if isinstance(v, float) or v is pd.NA else str(v))


def _model_figures(
    study: StudyResults, data: Any, folder: Path, notes: list[str]
) -> list[Block]:
    """Figure 2 and the traversals; every failure becomes a note and a placeholder."""
    path = folder / "figure2_reconstructions.png"
    chosen = picks(study.results)
    reason = None
    if data is None:
        reason = "no dataset was given to the report"
    elif not chosen:
        reason = "no evaluated models yet"
    if reason is None:
        try:
            return _draw_model_figures(study, data, folder, chosen, notes)
        except Exception as err:  # never let a figure crash the report
            reason = f"drawing failed ({type(err).__name__}: {err})"
    message = f"Figure 2 and the latent traversals were skipped: {reason}."
    notes.append(message)
    figures.placeholder(path, message)
    return [Paragraph(message), Image(path, "Figure 2 (skipped).")]


def _draw_model_figures(
    study: StudyResults, data: Any, folder: Path, chosen: list[dict[str, Any]], notes: list[str]
) -> list[Block]:
    paths = study.trials.set_index("trial_id")["path"]
    config = read_config(Path(paths[chosen[0]["trial_id"]]))
    split_seed = int(config.get("split_seed", 0))
    test_fraction = float(config.get("test_fraction", 0.1))
    test = np.asarray(data.split(split_seed, test_fraction).test)
    rng = np.random.default_rng(FIGURE_SEED)
    shown = np.sort(rng.choice(test, size=min(N_FIGURE_IMAGES, test.size), replace=False))
    context = np.sort(rng.choice(test, size=min(N_CONTEXT_IMAGES, test.size), replace=False))
    originals, context_images = data.images(shown), data.images(context)
    notes.append(
        f"Figure 2 images: {len(shown)} test images (split seed {split_seed}, test fraction "
        f"{test_fraction}, figure seed {FIGURE_SEED})."
    )
    codecs: dict[tuple[str, int], models.Codec] = {}
    rows = []
    panels: dict[str, dict[tuple[str, int], tuple[str, np.ndarray, list[str]]]] = {}
    for pick in chosen:
        key = (pick["trial_id"], pick["replicate"])
        try:
            if key not in codecs:
                codecs[key] = models.load_codec(Path(paths[key[0]]), key[1])
            rows.append((pick["label"], codecs[key].decode(codecs[key].encode(originals))))
            family = panels.setdefault(pick["family"], {})
            if key not in family:
                pictures, labels = models.traversal(codecs[key], originals[0], context_images)
                family[key] = (pick["label"], pictures, labels)
        except Exception as err:  # a missing or unreadable checkpoint skips that model only
            notes.append(f"{pick['label']}: model not shown ({type(err).__name__}: {err})")
    if not rows:
        raise RuntimeError("no picked model could be loaded")
    blocks: list[Block] = [Image(
        figures.figure2(originals, rows, folder / "figure2_reconstructions.png"),
        "Figure 2: (a) test images; then reconstructions (encoder mean, decoded) by the models "
        "the paper's rules pick, per family: the lowest training recon among models > 98 % "
        "on 4-var, and the best 5-var model.",
    )]
    for family, entries in panels.items():
        path = figures.traversal_figure(
            list(entries.values()), folder / f"traversals_{family}.png",
            f"Latent traversals: {family}",
        )
        blocks.append(Image(path, (
            f"Latent traversals of {family}: the first test image's code with one latent swept "
            "over the 2–98 % range of test codes, latents ordered by that range."
        )))
    return blocks


def _summary(
    study: StudyResults,
    tasks: dict[str, TaskAnalysis],
    heads: pd.DataFrame,
    answers: dict[str, str],
    reference: float,
    notes: list[str],
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "study": study.name,
        "experiment_dir": str(study.experiment_dir),
        "answer": answers,
        "counts": counts(study),
        "headline": heads.to_dict(orient="records"),
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
        "notes": notes,
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN and pandas NA as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
