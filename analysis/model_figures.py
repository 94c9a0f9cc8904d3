"""Figure 2 and the latent traversals: the report's figures that need trained models.

They load the picked members' checkpoints (`analysis.models`); any failure (no dataset given,
a checkpoint missing or unreadable) becomes a note and a placeholder, never a failed report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis import figures, models
from analysis.aggregate import picks
from analysis.document import Block, Image, Paragraph
from analysis.results import StudyResults
from trainables.columns import task_short
from trainables.experiment import read_params

FIGURE_SEED = 0  # which test images Figure 2 and the traversals show
N_FIGURE_IMAGES = 10
N_CONTEXT_IMAGES = 256  # test images whose codes set each latent's traversal range


def model_figures(
    study: StudyResults, data: Any, folder: Path, notes: list[str]
) -> list[Block]:
    """Figure 2 and the traversals; every failure becomes a note and a placeholder."""
    path = folder / "figure2_reconstructions.png"
    chosen = picks(study.results, study.primary_task)
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
    config = read_params(Path(paths[chosen[0]["trial_id"]]))
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
        f"on 4-var, and the best {task_short(study.primary_task)} model.",
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
