"""The report's figures (matplotlib's object API with the Agg canvas: no display, no pyplot
global state, safe to call from any thread).

Figure 1 follows the seed paper: disentanglement against test reconstruction error, the
points kept by the paper's aggregation, their (family, value) means ± std labelled with the
hyperparameter, the Pareto fronts as step lines, and the untrained-encoder (step 0) score as
a dashed band, because the Higgins metric is far above chance even untrained.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import cm, colormaps, colors, ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.aggregate import aggregate, kept_rows
from analysis.results import families_in, usable
from trainables.columns import task_short, task_title
from trainables.config import PARAM_SYMBOL
from trainables.families import FAMILIES

DPI = 110
PANELS_PER_ROW = 4


def colour(family: str) -> str:
    """A fixed colour per family, the same in every figure."""
    return FAMILIES[family].colour if family in FAMILIES else "tab:gray"


def placeholder(path: Path, message: str) -> Path:
    """A small image that says why a figure is missing, so the report's file set is fixed."""
    fig = Figure(figsize=(6, 1.6))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(message, 70), ha="center", va="center", fontsize=10)
    return _save(fig, path)


def figure1(
    results: pd.DataFrame,
    baseline: pd.DataFrame,
    fronts: pd.DataFrame,
    task: str,
    path: Path,
    reference: float,
) -> Path:
    """Figure 1 of the paper for one task (see the module docstring)."""
    score = f"disentanglement_{task}"
    kept = kept_rows(results, task)
    if kept.empty:
        return placeholder(path, "No finished trials yet: nothing to plot.")
    summary = aggregate(results, task)
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    _baseline_band(ax, usable(baseline, task)[score].to_numpy(float))
    for family in families_in(kept):
        c = colour(family)
        mine = kept[kept["family"] == family]
        ax.scatter(mine["recon_test"], mine[score], s=9, color=c, alpha=0.3, linewidths=0)
        agg = summary[summary["family"] == family]
        ax.errorbar(
            agg["recon_test_mean"], agg[f"{score}_mean"],
            xerr=agg["recon_test_std"].fillna(0), yerr=agg[f"{score}_std"].fillna(0),
            fmt="o", color=c, markeredgecolor="black", markersize=6, capsize=2, label=family,
        )
        for _, row in agg.iterrows():
            ax.annotate(
                f"{PARAM_SYMBOL.get(row['param'], row['param'])}={row['value']:g}",
                (row["recon_test_mean"], row[f"{score}_mean"]), xytext=(4, 5),
                textcoords="offset points", fontsize=7, color=c,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
            )
        front = fronts[fronts["front"] == family].sort_values("recon_test")
        if not front.empty:
            ax.step(
                np.r_[front["recon_test"], reference], np.r_[front[score], front[score].iloc[-1]],
                where="post", color=c, linewidth=1.2, alpha=0.8,
            )
    ax.set_xlabel("test reconstruction error (nats per image)")
    ax.set_ylabel(f"disentanglement ({task_title(task)})")
    ax.set_title(f"Figure 1 ({task_title(task)}): up and left is better")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _baseline_band(ax: Axes, scores: np.ndarray) -> None:
    if scores.size == 0:
        return
    mean, std = float(scores.mean()), float(scores.std())
    ax.axhspan(mean - std, mean + std, color="gray", alpha=0.15, linewidth=0)
    ax.axhline(mean, color="gray", linestyle="--", linewidth=1,
               label=f"untrained encoder (step 0): {mean:.3f}")


def figure2(originals: np.ndarray, rows: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """Figure 2: the test images on top, then one labelled row of reconstructions per model."""
    labelled = [("(a) dSprites test images", originals)] + [
        (f"({chr(ord('b') + i)}) {label}", images) for i, (label, images) in enumerate(rows)
    ]
    return _mosaic_figure([labelled], [None], path, "Figure 2: reconstructions")


def traversal_figure(
    panels: list[tuple[str, np.ndarray, list[str]]], path: Path, title: str
) -> Path:
    """Latent traversals, one panel per model: (title, pictures (d, steps, 64, 64), row labels),
    as :func:`analysis.models.traversal` returns them."""
    blocks = [list(zip(labels, pictures, strict=True)) for _, pictures, labels in panels]
    return _mosaic_figure(blocks, [name for name, _, _ in panels], path, title)


def _mosaic_figure(
    blocks: list[list[tuple[str, np.ndarray]]], titles: list[str | None], path: Path, title: str
) -> Path:
    """Each block is a grid of labelled image rows drawn as one image (fast, crisp)."""
    heights = [len(block) for block in blocks]
    cols = max(len(images) for block in blocks for _, images in block)
    fig = Figure(figsize=(2.6 + 0.75 * cols, 0.8 + 0.75 * sum(heights)))
    axes = fig.subplots(len(blocks), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, block, name in zip(axes[:, 0], blocks, titles, strict=True):
        ax.imshow(_tile([images for _, images in block], cols), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks(
            [(i + 0.5) * 66 for i in range(len(block))],
            [textwrap.fill(label, 38) for label, _ in block], fontsize=7,
        )
        if name:
            ax.set_title(textwrap.fill(name, 90), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _tile(rows: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    cell = 64 + pad
    canvas = np.ones((len(rows) * cell, cols * cell))
    for i, images in enumerate(rows):
        for j, image in enumerate(np.asarray(images, dtype=float)):
            canvas[i * cell : i * cell + 64, j * cell : j * cell + 64] = image
    return canvas


def training_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Training loss against step, one panel per family, one line per trial (colour = value)."""
    curves = curves.dropna(subset=["loss"])
    if curves.empty:
        return placeholder(path, "No training reports yet.")
    families = families_in(curves)
    fig, axes = family_panels(len(families), 4.5, 3.6)
    positive = bool((curves["loss"] > 0).all())
    for ax, family in zip(axes, families, strict=True):
        mine = curves[curves["family"] == family]
        values = np.sort(mine["value"].unique())
        cmap = colormaps["viridis"].resampled(max(len(values), 2))
        shown = set()
        ordered = mine.sort_values(["value", "trial_id", "step"], kind="mergesort")
        for _, trial in ordered.groupby("trial_id", sort=False):
            v = trial["value"].iloc[0]
            index = int(np.flatnonzero(values == v)[0]) if np.isfinite(v) else 0
            label = None if v in shown else f"{v:g}"
            shown.add(v)
            ax.plot(trial["step"], trial["loss"], color=cmap(index), linewidth=1, label=label)
        ax.set_title(family, fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log" if positive else "linear")
        if positive:
            plain_log_labels(ax.yaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="value", title_fontsize=7)
    axes[0].set_ylabel("training loss (mean over healthy members)")
    return _save(fig, path)


class PlainLogFormatter(ticker.LogFormatter):
    """The ticks matplotlib's log formatter labels, each as a plain number (`0.1`, `200`,
    `10000`; its own text writes `1e-01` and `1e+04`)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_labels(axis) -> None:
    """A log axis's tick labels as plain text (`100`, `200`) where matplotlib writes math text
    (`10^2`, `2×10^2`): it parses each distinct math label (~20 ms), which made the training
    curves more than half of a report's drawing time. The same ticks are labelled."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def family_panels(n: int, width: float, height: float,
                  layout: str | None = None) -> tuple[Figure, list]:
    """One panel per family, at most `PANELS_PER_ROW` to a row (eight families stay legible);
    the grid's unused panels are hidden."""
    columns = min(n, PANELS_PER_ROW)
    rows = -(-n // columns)
    fig = Figure(figsize=(width * columns, height * rows), layout=layout)
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def pbt_schedules(schedule: pd.DataFrame, final_score: dict[str, float], ranks: dict[str, str],
                  path: Path) -> Path:
    """λ1 (or β) over steps, one line per PBT trial, coloured by the trial's final objective;
    a dot where a trial cloned another (its line jumps to the donor's value, perturbed); each
    line ends in the trial's rank within its family when last ranked (`ranks`, by trial)."""
    if schedule.empty:
        return placeholder(path, "No PBT reports yet.")
    families = families_in(schedule)
    fig, axes = family_panels(len(families), 5.5, 3.8, layout="constrained")
    scores = np.array([v for v in final_score.values() if np.isfinite(v)])
    low, high = (scores.min(), scores.max()) if scores.size else (0.0, 1.0)
    cmap = colormaps["viridis"]
    for ax, family in zip(axes, families, strict=True):
        for trial_id, rows in schedule[schedule["family"] == family].groupby("trial_id"):
            score = final_score.get(trial_id, np.nan)
            shade = cmap((score - low) / (high - low)) if np.isfinite(score) and high > low \
                else "tab:gray"
            cloned = rows[rows["cloned_from"].notna()]
            # the new value starts at the clone's step (its first report comes later)
            line = pd.concat([rows.assign(order=0),
                              cloned.assign(step=cloned["cloned_at"], order=1)])
            line = line.sort_values(["step", "order"], kind="mergesort")
            ax.step(line["step"], line["value"], where="post", color=shade, linewidth=1.2)
            ax.plot(cloned["cloned_at"], cloned["value"], "o", color=shade, markersize=4)
            if trial_id in ranks:
                ax.annotate(ranks[trial_id], (line["step"].iloc[-1], line["value"].iloc[-1]),
                            xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=7, color=shade)
        ax.set_title(family, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("value trained with")
        ax.set_yscale("symlog", linthresh=0.1)  # λ1 = 0 and log steps above it
        plain_log_labels(ax.yaxis)
        ax.grid(alpha=0.3)
    if scores.size:
        mappable = cm.ScalarMappable(colors.Normalize(low, high), cmap)
        fig.colorbar(mappable, ax=axes, label="final PBT objective")
    return _save(fig, path)


def compared_fronts(fronts: pd.DataFrame, task: str, reference: float, path: Path) -> Path:
    """The labelled fronts of two studies ("<family> · <study>") as step lines: colour by
    family, one line style per study."""
    if fronts.empty:
        return placeholder(path, "No healthy rows in either study: no fronts to compare.")
    score = f"disentanglement_{task}"
    studies = sorted({label.split(" · ", 1)[1] for label in fronts["front"]})
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for label, front in fronts.groupby("front", sort=True):
        family, study = label.split(" · ", 1)
        front = front.sort_values("recon_test")
        ax.step(np.r_[front["recon_test"], reference], np.r_[front[score], front[score].iloc[-1]],
                where="post", color=colour(family), linewidth=1.5, label=label,
                linestyle=("-", "--", ":")[studies.index(study) % 3])
        ax.plot(front["recon_test"], front[score], ".", color=colour(family))
    ax.set_xlabel("test reconstruction error (nats per image)")
    ax.set_ylabel(f"disentanglement ({task_title(task)})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def hypervolume_progress(progress: pd.DataFrame, xlabel: str, task: str, path: Path) -> Path:
    """The normalised hypervolume of the front on `task` (the study's primary task) as the
    search advanced."""
    if progress.empty:
        return placeholder(path, "No evaluations yet: no search progress to show.")
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.plot(progress["x"], progress["hypervolume_norm"], "o-", color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"hypervolume (norm), {task_short(task)} task")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return path
