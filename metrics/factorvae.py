"""The FactorVAE disentanglement metric (Kim & Mnih 2018), as disentanglement_lib computes it.

Global variances of each code dim come from 10,000 uniform points (ddof=1); dims whose
*standard deviation* is below 0.05 are dropped (disentanglement_lib's ``prune_dims`` compares
``sqrt(variance)`` with the threshold, so "variance < 0.05" descriptions are loose). One vote:
pick a factor k uniformly, draw 64 factor vectors sharing factor k, encode, and take the
active dim with the smallest variance divided by its global variance; the classifier maps each
dim to the factor it got most training votes for (10,000 votes), the score is its accuracy on
5,000 fresh votes. No active dim at all gives score 0, as disentanglement_lib does.

Differences: the global-variance sample is the shared ("points", "train", 10000) sample that
MIG/DCI/SAP also use (disentanglement_lib draws a separate one); ``num_active_dims`` is the
count of active dims (disentanglement_lib reports the length of its boolean mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.codes import (
    CodeTable,
    Draw,
    Encode,
    Key,
    Plan,
    Sampler,
    latent_factors,
    run_plan,
)


def factorvae(encode: Encode, data: Any, *, seed: int = 0, **options: Any) -> dict:
    """FactorVAE score of one model: ``{"score", "train_accuracy", "eval_accuracy",
    "num_active_dims"}``. Options: ``batch_size``, ``num_train``, ``num_eval``,
    ``num_variance_estimate``, ``prune_threshold``."""
    return run_plan(plan_factorvae, encode, data, seed, options)


def plan_factorvae(sampler: Sampler, *, batch_size: int = 64, num_train: int = 10_000,
                   num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                   prune_threshold: float = 0.05) -> Plan:
    """Draw the variance sample and the train/eval votes; score each member."""
    factors = latent_factors(sampler.data)
    var_key = sampler.points("train", num_variance_estimate)

    def votes(part: str, n: int) -> tuple[Key, np.ndarray]:
        key: Key = ("factorvae", part, n, batch_size)
        draw = sampler.draw(key, lambda rng: sample_votes(sampler.data, rng, factors, n,
                                                          batch_size))
        return key, draw.labels

    train_key, train_labels = votes("train", num_train)
    eval_key, eval_labels = votes("eval", num_eval)
    n_factors = len(factors)

    def score(table: CodeTable) -> list[dict]:
        out = []
        for m in range(table.members):
            global_var = np.var(table.get(var_key, m), axis=0, ddof=1)
            active = np.sqrt(global_var) >= prune_threshold
            if not active.any():
                out.append({"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0,
                            "num_active_dims": 0})
                continue
            train = vote_matrix(table.get(train_key, m), train_labels, n_factors,
                                global_var, active)
            evals = vote_matrix(table.get(eval_key, m), eval_labels, n_factors,
                                global_var, active)
            classifier = np.argmax(train, axis=0)
            dims = np.arange(train.shape[1])
            train_acc = train[classifier, dims].sum() / train.sum()
            eval_acc = evals[classifier, dims].sum() / evals.sum()
            out.append({"score": float(eval_acc), "train_accuracy": float(train_acc),
                        "eval_accuracy": float(eval_acc), "num_active_dims": int(active.sum())})
        return out

    return Plan(keys=(var_key, train_key, eval_key), scorer=score)


def sample_votes(data: Any, rng: np.random.Generator, factors: tuple[int, ...], n: int,
                 batch_size: int) -> Draw:
    """n votes: classes (n, batch_size, n_factors) sharing factor `factors[k]` with the
    vote's first row, labels k."""
    labels = rng.integers(len(factors), size=n)
    classes = np.asarray(data.sample_classes(n * batch_size, rng)).reshape(n, batch_size, -1)
    cols = np.asarray(factors)[labels]
    rows = np.arange(n)
    classes[rows, :, cols] = classes[rows, 0, cols][:, None]
    return Draw(classes=classes, labels=labels)


def vote_matrix(codes: np.ndarray, labels: np.ndarray, n_factors: int,
                global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Votes (n_factors, d): row = the fixed factor, column = the argmin active dim
    (indexed among the active dims, as disentanglement_lib)."""
    local = np.var(codes[..., active], axis=1, ddof=1) / global_var[active]
    argmin = np.argmin(local, axis=1)
    votes = np.zeros((n_factors, len(global_var)), dtype=np.int64)
    np.add.at(votes, (labels, argmin), 1)
    return votes
