"""Reconstruction error: Bernoulli negative log-likelihood in nats per image.

The sigmoid cross-entropy of the decoder logits against the binary pixels, summed over the
4096 pixels and averaged over images: the same quantity as the training objective's
reconstruction term, so train and test errors are comparable with the training curve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@torch.inference_mode()
def reconstruction(logits_fn: Callable[[np.ndarray], Any], data: Any, *, indices: np.ndarray,
                   n: int = 10_000, seed: int = 0, batch_size: int = 4096) -> dict:
    """Mean summed BCE (nats per image) on a seeded sample of `n` images of `indices`.

    `indices` is a split's image indices (train or test); all of them are used when there are
    at most `n`. The sample is ``sort(default_rng(seed).choice(indices, n, replace=False))``.
    `logits_fn(images uint8 (b, 64, 64))` returns Bernoulli logits (b, 4096) as a numpy array
    or a torch tensor (on any device: the loss is computed where the logits are).
    """
    indices = np.asarray(indices)
    k = min(n, len(indices))
    if k == 0:
        raise ValueError("no images to evaluate")
    picks = np.sort(np.random.default_rng(seed).choice(indices, size=k, replace=False))
    total = 0.0
    for start in range(0, k, batch_size):
        images = np.asarray(data.images(picks[start : start + batch_size]))
        pixels = images.reshape(len(images), -1)  # the image's pixels, whatever its size
        logits = torch.as_tensor(logits_fn(images)).reshape(pixels.shape).float()
        target = torch.as_tensor(pixels, device=logits.device)
        per_image = F.binary_cross_entropy_with_logits(
            logits, target.to(logits.dtype), reduction="none").sum(dim=1)
        total += float(per_image.double().sum())
    return {"score": total / k, "n": k}
