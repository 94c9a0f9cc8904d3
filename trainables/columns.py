"""The columns of one evaluation row: what the trainable reports and results.csv holds.

A row is one (trial, replicate, metric calculation). `ROW_KEYS` identify it; `SCORES` are
measured in every evaluation, the first four (`CONTRACT_SCORES`) being the interface's
fixed columns; extra metrics (MIG, DCI, ...) add columns of their own names.
"""

from __future__ import annotations

ROW_KEYS: tuple[str, ...] = ("replicate", "seed", "calculation", "step", "diverged")
CONTRACT_SCORES: tuple[str, ...] = (
    "disentanglement_4var", "disentanglement_5var", "recon_test", "recon_train",
)
# recon_<split>: the decoder on one posterior sample per image (the authors' logged measure,
# the seed's 94.0 / 156.1 nats); recon_<split>_mean: on the posterior mean (lower).
SCORES: tuple[str, ...] = (*CONTRACT_SCORES, "recon_test_mean", "recon_train_mean")
# The validation measures (a config's `validation_fraction` > 0), the only ones a search reads
# (`trainables.objectives`): Higgins votes from `validation_seed`, one posterior sample per
# validation image. Named apart so no reader takes them for the test measures the report states.
VALIDATION = "validation_"
VALIDATION_SCORES: tuple[str, ...] = (
    "validation_disentanglement_4var", "validation_disentanglement_5var", "validation_recon",
)
