"""Disentanglement metrics and reconstruction error.

Every metric has the signature ``NAME(encode, data, *, seed=0, **options) -> dict`` with a
``"score"``; ``encode(images uint8 (n, 64, 64)) -> codes (n, d)`` (the encoder mean).
`suite.evaluate` / `suite.prepare` run several metrics (and the members of a pack) on one set
of encoded images.
"""

from analysis.metrics.codes import CodeTable, IndexSet, Plan, Sampler, encode_indices
from analysis.metrics.dci import dci
from analysis.metrics.factorvae import factorvae
from analysis.metrics.higgins import higgins
from analysis.metrics.mig import mig
from analysis.metrics.reconstruction import reconstruction
from analysis.metrics.sap import sap
from analysis.metrics.suite import METRICS, Evaluation, evaluate, prepare

__all__ = [
    "METRICS",
    "CodeTable",
    "Evaluation",
    "IndexSet",
    "Plan",
    "Sampler",
    "dci",
    "encode_indices",
    "evaluate",
    "factorvae",
    "higgins",
    "mig",
    "prepare",
    "reconstruction",
    "sap",
]
