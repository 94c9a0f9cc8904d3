"""Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018), as
disentanglement_lib computes them.

10,000 training and 5,000 test points (the shared ("points", "train"/"test") samples); per
factor a gradient-boosted classifier predicts the factor class from the codes; its feature
importances (normalised to sum 1 per factor) form the importance matrix R (d, F).
Disentanglement = sum_i rho_i (1 - H_F(R_i. / sum R_i.)) with rho_i the share of dim i's total
importance; completeness is the same over factors; informativeness = mean test accuracy
(``informativeness_train``: train accuracy). The score is the disentanglement.

Model (option ``model``):
- ``"hist"`` (default): ``HistGradientBoostingClassifier`` set up like disentanglement_lib's
  ``GradientBoostingClassifier()`` (100 boosting rounds, learning rate 0.1, depth 3, leaves of
  >= 1 point, no early stopping); importances are each feature's total split gain over all
  trees, read from the fitted trees (scikit-learn offers no ``feature_importances_`` for it).
  Deliberate difference, for time: the exact model costs ~6 s per class on the shared 2-core
  development machine (113 classes on dSprites: ~10 minutes per evaluation); the histogram
  model took 30-40 s for all five factors there.
- ``"gbt"``: ``GradientBoostingClassifier()``, exactly disentanglement_lib (slow).
Both are seeded from the metric's seed (disentanglement_lib left them unseeded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.codes import (
    CodeTable,
    Encode,
    Plan,
    Sampler,
    derived_seed,
    latent_factors,
    run_plan,
)

MODELS = ("hist", "gbt")


def dci(encode: Encode, data: Any, *, seed: int = 0, **options: Any) -> dict:
    """DCI of one model: ``{"score", "disentanglement", "completeness",
    "informativeness_train", "informativeness_test"}``.
    Options: ``num_train``, ``num_test``, ``model`` ("hist" or "gbt")."""
    return run_plan(plan_dci, encode, data, seed, options)


def plan_dci(sampler: Sampler, *, num_train: int = 10_000, num_test: int = 5_000,
             model: str = "hist") -> Plan:
    """Share the ("points", "train"/"test") samples; score each member's codes of them."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    factors = list(latent_factors(sampler.data))
    train_key = sampler.points("train", num_train)
    test_key = sampler.points("test", num_test)
    y_train = sampler.get(train_key).classes[:, factors]
    y_test = sampler.get(test_key).classes[:, factors]
    model_seed = derived_seed(sampler.seed, ("dci", "model"))

    def score(table: CodeTable) -> list[dict]:
        out = []
        for m in range(table.members):
            importance, train_acc, test_acc = importance_matrix(
                table.get(train_key, m), y_train, table.get(test_key, m), y_test,
                model=model, seed=model_seed)
            d = disentanglement(importance)
            out.append({"score": d, "disentanglement": d,
                        "completeness": completeness(importance),
                        "informativeness_train": train_acc, "informativeness_test": test_acc})
        return out

    return Plan(keys=(train_key, test_key), scorer=score)


def importance_matrix(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                      y_test: np.ndarray, *, model: str = "hist",
                      seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(importance (d, F), mean train accuracy, mean test accuracy) over the factors."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    d, n_factors = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((d, n_factors))
    train_acc, test_acc = [], []
    for j in range(n_factors):
        if model == "gbt":
            clf = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train[:, j])
            importance[:, j] = np.abs(clf.feature_importances_)
        else:
            clf = HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, max_depth=3, max_leaf_nodes=None,
                min_samples_leaf=1, early_stopping=False, random_state=seed,
            ).fit(x_train, y_train[:, j])
            importance[:, j] = _split_gains(clf, d)
        train_acc.append(np.mean(clf.predict(x_train) == y_train[:, j]))
        test_acc.append(np.mean(clf.predict(x_test) == y_test[:, j]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def _split_gains(clf: Any, d: int) -> np.ndarray:
    """Each feature's share of the total split gain over all trees (zeros if no split)."""
    gains = np.zeros(d)
    for trees in clf._predictors:  # private, no public route (tests/test_dependency_contracts)
        for tree in trees:
            nodes = tree.nodes[tree.nodes["is_leaf"] == 0]
            np.add.at(gains, nodes["feature_idx"], nodes["gain"])
    total = gains.sum()
    return gains / total if total > 0 else gains


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over code dims of 1 - entropy over factors (base F)."""
    from scipy.stats import entropy

    per_code = 1.0 - entropy(importance.T + 1e-11, base=importance.shape[1])
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weight = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * weight))


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - entropy over code dims (base d)."""
    from scipy.stats import entropy

    per_factor = 1.0 - entropy(importance + 1e-11, base=importance.shape[0])
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weight = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * weight))
