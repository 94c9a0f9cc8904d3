"""Separated Attribute Predictability (Kumar et al. 2018), as disentanglement_lib computes it
for discrete factors (``continuous_factors=False``).

10,000 training and 5,000 test points (the shared ("points", "train"/"test") samples); for
each (code dim i, factor j) a ``LinearSVC(C=0.01, class_weight="balanced")`` is fitted on the
single unscaled code dim and its test accuracy is S[i, j]; the score is the mean over factors
of the gap between the two largest entries of S[:, j].

Difference: current scikit-learn picks the primal liblinear solver (``dual="auto"``) where
disentanglement_lib's version solved the dual; both minimise the same objective, so the fits
agree up to the solver tolerance. Convergence warnings are silenced (the fit is used as is,
as disentanglement_lib did).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from metrics.codes import CodeTable, Encode, Plan, Sampler, latent_factors, run_plan


def sap(encode: Encode, data: Any, *, seed: int = 0, **options: Any) -> dict:
    """SAP of one model: ``{"score", "per_factor"}``. Options: ``num_train``, ``num_test``."""
    return run_plan(plan_sap, encode, data, seed, options)


def plan_sap(sampler: Sampler, *, num_train: int = 10_000, num_test: int = 5_000) -> Plan:
    """Share the ("points", "train"/"test") samples; score each member's codes of them."""
    factors = list(latent_factors(sampler.data))
    train_key = sampler.points("train", num_train)
    test_key = sampler.points("test", num_test)
    y_train = sampler.get(train_key).classes[:, factors]
    y_test = sampler.get(test_key).classes[:, factors]

    def score(table: CodeTable) -> list[dict]:
        out = []
        for m in range(table.members):
            matrix = score_matrix(table.get(train_key, m), y_train, table.get(test_key, m),
                                  y_test)
            top = np.sort(matrix, axis=0)
            gaps = top[-1] - top[-2]
            out.append({"score": float(gaps.mean()), "per_factor": [float(g) for g in gaps]})
        return out

    return Plan(keys=(train_key, test_key), scorer=score)


def score_matrix(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray) -> np.ndarray:
    """Test accuracy (d, F) of a linear SVM predicting factor j from code dim i alone."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    d, n_factors = x_train.shape[1], y_train.shape[1]
    if d < 2:
        raise ValueError("SAP needs at least 2 code dimensions")
    matrix = np.zeros((d, n_factors))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(d):
            for j in range(n_factors):
                clf = LinearSVC(C=0.01, class_weight="balanced")
                clf.fit(x_train[:, i : i + 1], y_train[:, j])
                matrix[i, j] = np.mean(clf.predict(x_test[:, i : i + 1]) == y_test[:, j])
    return matrix
