"""The beta-VAE disentanglement metric (Higgins et al. 2017), as Rubenstein et al. 2018 ran it.

One vote: pick a factor k uniformly among the task's factors; draw L pairs of factor vectors
uniformly and copy factor k from the first to the second vector of each pair; the feature is
the mean over the pairs of |z1 - z2| (encoder means), the label is k.

Protocols
- ``"authors"`` (default; the seed paper's numbers): L = 30, 5,000 votes, a linear softmax
  classifier (weights + bias) trained full-batch on the mean cross-entropy with Adagrad,
  lr 1e-2, 100,000 steps, 3 restarts from fresh random initialisation on the same votes; each
  restart's *training* accuracy is one calculation, the score is their mean. Features are not
  standardised (the protocol does not, so the score depends on the code scale through the
  fixed step budget). Details the protocol leaves open are TensorFlow 1's defaults (an
  assumption: the code of that era was TensorFlow): Glorot-uniform weights, zero bias,
  Adagrad accumulators starting at 0.1 (option ``init_accumulator``), update
  ``w -= lr * g / sqrt(acc)``. The restarts (and the members of a pack) train as one batched
  float32 problem in torch; restart r starts from the same weights for every member, so a
  model scores the same alone as inside a pack. The exact 100,000 steps are compute-bound
  (two (R*C, 17) x (17, 5000) matmuls and 5000*R*C exps per step): ~0.6-1 ms per step on one
  loaded CPU core, i.e. 1-2 minutes per task; pass ``device="cuda"`` on a GPU machine, or
  opt into the plateau stop (``plateau_steps``; not the protocol) where time matters more.
- ``"heldout"`` (disentanglement_lib): L = 64, 10,000 training votes, 5,000 fresh evaluation
  votes, scikit-learn ``LogisticRegression()`` with the defaults; the score is the held-out
  accuracy (one calculation). Difference: disentanglement_lib ran scikit-learn < 0.22, whose
  default was liblinear one-vs-rest; the current default is lbfgs multinomial
  (``max_iter=100``; convergence warnings are silenced, the fit is used as is).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from metrics.codes import (
    CodeTable,
    Draw,
    Encode,
    Key,
    Plan,
    Sampler,
    derived_seed,
    higgins_tasks,
    run_plan,
)

_CHECK_EVERY = 1_000  # steps between accuracy checks of the optional plateau stop
CLASSIFIER_STEPS = 100_000  # the authors' full-batch Adagrad steps per calculation
PROTOCOLS: dict[str, dict[str, int]] = {
    "authors": {"pairs": 30, "votes": 5_000},
    "heldout": {"pairs": 64, "votes": 10_000, "eval_votes": 5_000},
}


def higgins(encode: Encode, data: Any, *, seed: int = 0, task: str = "5var",
            protocol: str = "authors", **options: Any) -> dict:
    """The metric for one model: ``{"score", "calculations", "task", "protocol", ...}``.

    Options: ``pairs``, ``votes``, ``eval_votes`` (heldout); ``classifier_steps``,
    ``restarts``, ``lr``, ``init_accumulator``, ``device``, ``plateau_steps``, ``plateau_tol``
    (authors; see `fit_softmax_adagrad`); ``chunk_size`` (images per `encode` call).
    """
    return run_plan(plan_higgins, encode, data, seed,
                    {"task": task, "protocol": protocol, **options})


def plan_higgins(sampler: Sampler, *, task: str = "5var", protocol: str = "authors",
                 pairs: int | None = None, votes: int | None = None,
                 eval_votes: int | None = None, classifier_steps: int = CLASSIFIER_STEPS,
                 restarts: int = 3, lr: float = 1e-2, init_accumulator: float = 0.1,
                 device: str | torch.device = "cpu", plateau_steps: int | None = None,
                 plateau_tol: float = 1e-3) -> Plan:
    """Draw the votes (shared by every member scored later) and return the scoring plan."""
    tasks = higgins_tasks(sampler.data)
    if task not in tasks:
        raise ValueError(f"task must be one of {sorted(tasks)} for this dataset, got {task!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    defaults = PROTOCOLS[protocol]
    pairs = pairs or defaults["pairs"]
    factors = tasks[task]
    base = {"task": task, "protocol": protocol}

    def draw_votes(part: str, n: int) -> tuple[Key, np.ndarray]:
        key: Key = ("higgins", task, part, n, pairs)
        draw = sampler.draw(key, lambda rng: sample_votes(sampler.data, rng, factors, n, pairs))
        return key, draw.labels

    if protocol == "authors":
        key, labels = draw_votes("votes", votes or defaults["votes"])
        init_seed = derived_seed(sampler.seed, ("higgins", task, "init"))

        def score_authors(table: CodeTable) -> list[dict]:
            feats = np.stack([vote_features(table.get(key, m)) for m in range(table.members)])
            acc, steps_run = fit_softmax_adagrad(
                feats, labels, len(factors), restarts=restarts, steps=classifier_steps, lr=lr,
                init_accumulator=init_accumulator, seed=init_seed, device=device,
                plateau_steps=plateau_steps, plateau_tol=plateau_tol)
            return [{"score": float(a.mean()), "calculations": [float(x) for x in a],
                     "classifier_steps": steps_run, **base} for a in acc]

        return Plan(keys=(key,), scorer=score_authors)

    train_key, train_labels = draw_votes("train", votes or defaults["votes"])
    eval_key, eval_labels = draw_votes("eval", eval_votes or defaults["eval_votes"])

    def score_heldout(table: CodeTable) -> list[dict]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        out = []
        for m in range(table.members):
            train = vote_features(table.get(train_key, m))
            model = LogisticRegression()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(train, train_labels)
            train_acc = model.score(train, train_labels)
            acc = float(model.score(vote_features(table.get(eval_key, m)), eval_labels))
            out.append({"score": acc, "calculations": [acc], "train_accuracy": float(train_acc),
                        **base})
        return out

    return Plan(keys=(train_key, eval_key), scorer=score_heldout)


def sample_votes(data: Any, rng: np.random.Generator, factors: tuple[int, ...], n: int,
                 pairs: int) -> Draw:
    """n votes: classes (n, 2, pairs, n_factors) with factor k shared in each pair, labels k
    (the position of the shared factor in `factors`)."""
    labels = rng.integers(len(factors), size=n)
    classes = np.asarray(data.sample_classes(n * 2 * pairs, rng)).reshape(n, 2, pairs, -1)
    rows = np.arange(n)[:, None]
    cols = np.asarray(factors)[labels][:, None]
    within = np.arange(pairs)[None, :]
    classes[rows, 1, within, cols] = classes[rows, 0, within, cols]
    return Draw(classes=classes, labels=labels)


def vote_features(codes: np.ndarray) -> np.ndarray:
    """Mean over the pairs of |z1 - z2|: codes (n, 2, pairs, d) -> features (n, d)."""
    return np.abs(codes[:, 0] - codes[:, 1]).mean(axis=1)


@torch.inference_mode()
def fit_softmax_adagrad(features: np.ndarray, labels: np.ndarray, n_classes: int, *,
                        restarts: int = 3, steps: int = CLASSIFIER_STEPS, lr: float = 1e-2,
                        init_accumulator: float = 0.1, seed: int = 0,
                        device: str | torch.device = "cpu", plateau_steps: int | None = None,
                        plateau_tol: float = 1e-3) -> tuple[np.ndarray, int]:
    """(training accuracy (M, restarts), steps run) of full-batch Adagrad softmax regressions.

    features (M, n, d) for M models sharing `labels` (n,). All M x restarts problems run as one
    batched float32 problem, laid out (classes, votes) so the softmax runs over a short axis
    of long contiguous rows; gradients are written by hand into preallocated buffers (no
    autograd), which keeps a step at a few elementwise passes and two small matmuls.

    Optional fast path (not the protocol): with `plateau_steps`, the training accuracies are
    checked every 1,000 steps and training stops once none moved by more than `plateau_tol`
    over the last `plateau_steps` steps.
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    m, n, d = x.shape
    x = torch.cat([x, torch.ones(m, n, 1, dtype=x.dtype, device=device)], dim=2)  # bias column
    xt = x.transpose(1, 2).contiguous()  # (M, D, n)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
    onehot = torch.zeros(n_classes, n, device=device)
    onehot[y, torch.arange(n, device=device)] = 1.0
    # The mean gradient is (softmax - onehot) @ x / n; the onehot part is constant.
    target_term = (torch.matmul(onehot, x) / n).repeat(1, restarts, 1)  # (M, R*C, D)

    limit = np.sqrt(6.0 / (d + n_classes))  # Glorot uniform, zero bias
    init = np.random.default_rng(seed).uniform(-limit, limit, size=(restarts, n_classes, d + 1))
    init[..., d] = 0.0
    w = torch.as_tensor(init.reshape(restarts * n_classes, d + 1), dtype=torch.float32,
                        device=device).repeat(m, 1, 1)  # (M, R*C, D)
    acc = torch.full_like(w, init_accumulator)
    probs = torch.empty(m, restarts * n_classes, n, device=device)
    grouped = probs.view(m, restarts, n_classes, n)
    peak = torch.empty(m, restarts, 1, n, device=device)
    total = torch.empty_like(peak)
    grad, denom = torch.empty_like(w), torch.empty_like(w)
    history: dict[int, torch.Tensor] = {}
    step = 0
    while step < steps:
        if plateau_steps is not None and step % _CHECK_EVERY == 0:
            history[step] = _accuracy(w, xt, y, restarts)
            before = history.get(step - plateau_steps)
            if before is not None and (history[step] - before).abs().max() <= plateau_tol:
                break
        step += 1
        torch.bmm(w, xt, out=probs)
        torch.amax(grouped, dim=2, keepdim=True, out=peak)
        grouped.sub_(peak).exp_()
        torch.sum(grouped, dim=2, keepdim=True, out=total)
        grouped.div_(total)
        torch.bmm(probs, x, out=grad)
        grad.div_(n).sub_(target_term)
        acc.addcmul_(grad, grad)
        torch.sqrt(acc, out=denom)
        w.addcdiv_(grad, denom, value=-lr)
    return _accuracy(w, xt, y, restarts).cpu().numpy(), step


def _accuracy(w: torch.Tensor, xt: torch.Tensor, y: torch.Tensor, restarts: int) -> torch.Tensor:
    """Training accuracy (M, R) of weights w (M, R*C, D) on inputs xt (M, D, n)."""
    logits = torch.bmm(w, xt).view(w.shape[0], restarts, -1, xt.shape[2])
    return (logits.argmax(dim=2) == y).float().mean(dim=2)
