"""Per-model differences between two studies that differ only in `[train] precision` (same
spec, same seeds), against the replicate-to-replicate spread of the first.

    .venv/bin/python benchmarks/precision_effect.py EXPERIMENT_FP32 EXPERIMENT_BF16

The bf16 figures of docs/speed.md come from `wae-study run laptop --set study.replicates=3
--set "grid.beta_vae=[1, 10]" --set "grid.wae_gaussian=[0, 2]" --set train.precision=P`.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pandas as pd

from trainables.columns import disentanglement, study_tasks
from trainables.experiment import read_study_text

MODEL = ["family", "value", "replicate", "seed"]


def model_scores(experiment: Path) -> pd.DataFrame:
    """One row per model: its scores (each task of the study's dataset, the test recon)
    averaged over the Higgins calculations."""
    spec = tomllib.loads(read_study_text(experiment))
    scores = [*map(disentanglement, study_tasks(spec)), "recon_test"]
    return pd.read_csv(experiment / "report" / "results.csv").groupby(MODEL)[scores].mean()


def main() -> None:
    first, second = (model_scores(Path(p)) for p in sys.argv[1:3])
    if not first.index.equals(second.index):
        sys.exit("the two studies do not hold the same models (family, value, replicate, seed)")
    diff = second - first
    spread = first.groupby(["family", "value"]).std()
    print("per model, second - first:\n" + diff.round(4).to_string())
    print("\nmean |difference| / replicate SD per grid point:\n"
          + (diff.abs().groupby(["family", "value"]).mean() / spread).round(2).to_string())
    print("\nover all models: mean difference", diff.mean().round(4).to_dict(),
          "\n  mean |difference|", diff.abs().mean().round(4).to_dict(),
          "\n  median replicate SD", spread.median().round(4).to_dict())


if __name__ == "__main__":
    main()
