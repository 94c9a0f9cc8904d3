"""How far the test reconstruction error moves when validation takes half the held-out images.

    .venv/bin/python benchmarks/held_out_split.py EXPERIMENT [EVAL_SEEDS]

The Higgins votes sample the whole factor grid (PROTOCOL), so a validation split leaves the
test disentanglement untouched; only `recon_test` reads the held-out images. For every
finished model of EXPERIMENT this re-measures `recon_test` from its final checkpoint, as
`trainables.evaluate` does (`recon_eval_images` sampled images, a posterior sample), on the
whole held-out set (validation_fraction 0) and on the test half (0.5), at EVAL_SEEDS eval
seeds (default 5), and prints the mean difference between the two against the spread that
re-drawing the eval seed alone gives.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from study.spec import experiment_spec
from trainables import data as data_module
from trainables.checkpoint import newest_loadable, pack_from_payload
from trainables.evaluate import reconstruction_errors
from trainables.experiment import trial_dirs

FRACTIONS = (0.0, 0.5)  # validation_fraction: none, then the searches' default


def recon_test(member, dataset, split, cfg, seed: int) -> float:
    """`recon_test` as a study's evaluation measures it, drawn from eval seed `seed`."""
    measured = dataclasses.replace(cfg, eval_seed=seed, validation_fraction=None)
    return reconstruction_errors(member, dataset, split, measured)["recon_test"]


def measure(experiment: Path, eval_seeds: int) -> np.ndarray:
    """(models, fractions, eval seeds) of recon_test."""
    spec = experiment_spec(experiment)
    dataset = data_module.load(spec["train"].get("data_path"))
    values = []
    for trial_dir in trial_dirs(experiment):
        found = newest_loadable(trial_dir)
        if found.payload is None:
            continue
        model, cfg = pack_from_payload(found.payload)
        model.eval()
        splits = [dataset.split(cfg.split_seed, cfg.test_fraction, f) for f in FRACTIONS]
        for k in range(int(cfg.replicates)):
            member = model.member(k)
            values.append([[recon_test(member, dataset, split, cfg, s)
                            for s in range(eval_seeds)] for split in splits])
    return np.asarray(values)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    values = measure(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    whole, half = values[:, 0], values[:, 1]
    diff = half - whole
    redraw = whole.std(axis=1, ddof=1)
    print(f"{len(values)} models, recon_eval_images per measurement as the study's config says")
    print(f"recon_test on the whole held-out set: mean {whole.mean():.2f}")
    print(f"test half - whole, same eval seed: mean {diff.mean():+.2f}, "
          f"mean |difference| {np.abs(diff).mean():.2f}")
    print(f"per model, mean over seeds of (half - whole): "
          f"mean |.| {np.abs(diff.mean(axis=1)).mean():.2f}")
    print(f"re-drawing the eval seed on the whole set: median SD {np.median(redraw):.2f}")
    print(f"relative: mean |difference| / mean recon_test = "
          f"{np.abs(diff).mean() / whole.mean():.2%}")


if __name__ == "__main__":
    main()
