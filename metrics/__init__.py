"""Disentanglement metrics and reconstruction error.

Every metric has the signature ``NAME(encode, data, *, seed=0, **options) -> dict`` with a
``"score"``; ``encode(images uint8 (n, 64, 64)) -> codes (n, d)`` (the encoder mean).
`suite.evaluate` / `suite.prepare` run several metrics (and the members of a pack) on one set
of encoded images. scikit-learn and scipy are imported inside the metrics that use them: each
trial, report and evaluation process would otherwise pay ~2 s to import them for metrics it
may never compute (the default Higgins protocol and the reconstruction error need neither).
"""

from metrics.codes import CodeTable, IndexSet, Plan, Sampler, encode_indices
from metrics.dci import dci
from metrics.factorvae import factorvae
from metrics.higgins import higgins
from metrics.mig import mig
from metrics.reconstruction import reconstruction
from metrics.sap import sap
from metrics.suite import HIGGINS, METRICS, Evaluation, evaluate, metric_names, prepare

__all__ = [
    "HIGGINS",
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
    "metric_names",
    "mig",
    "prepare",
    "reconstruction",
    "sap",
]
