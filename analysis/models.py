"""Trained members as plain numpy functions, for the figures that need a model.

Figure 2 and the latent traversals only need "images → codes" and "codes → pixels" for one
member of a pack; :class:`Codec` is that, so figures can be tested with any fake. The
checkpoint loading stays in :func:`load_codec`; which checkpoint is
`trainables.checkpoint.newest_loadable`'s choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainables.checkpoint import CheckpointError, newest_loadable, pack_from_payload

IMAGE_SHAPE = (64, 64)


@dataclass(frozen=True)
class Codec:
    """One trained model: ``encode`` uint8 images (n, 64, 64) → its codes (n, d), as the
    metrics read them; ``decode`` codes (n, d) → pixel probabilities (n, 64, 64)."""

    encode: Callable[[np.ndarray], np.ndarray]
    decode: Callable[[np.ndarray], np.ndarray]


def load_codec(trial_dir: Path, replicate: int) -> Codec:
    """Member ``replicate`` of the trial's newest checkpoint that loads; raises if none does."""
    found = newest_loadable(trial_dir)
    if found.payload is None:
        if not found.skipped:
            raise FileNotFoundError(f"no checkpoint in {trial_dir}")
        raise CheckpointError(found.skipped[0][1])
    model, config = pack_from_payload(found.payload)
    model.eval()
    if hasattr(model, "member"):  # a K = 1 view: no work spent on the other members
        return pack_codec(model.member(replicate), 0, 1, config.uniform_code)
    return pack_codec(model, replicate, int(config.replicates), config.uniform_code)


def pack_codec(model: Any, member: int, n_members: int, uniform_code: str = "mu") -> Codec:
    """Wrap a pack (`trainables.models`): ``encode`` gives member ``member``'s codes as the
    metrics read them (`trainables.evaluate.pack_encoder`, the study's `uniform_code`),
    ``decode`` feeds codes to every member's decoder (``decode (K, B, d) → logits``) and keeps
    ``member``'s output."""
    import torch

    from trainables.evaluate import pack_encoder

    first = next(iter(model.parameters()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    encoder = pack_encoder(model, [member], uniform_code)

    def encode(images: np.ndarray) -> np.ndarray:
        return encoder(np.asarray(images))[0]

    def decode(codes: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(np.asarray(codes), dtype=dtype, device=device)
        with torch.no_grad():
            logits = model.decode(batch.expand(n_members, *batch.shape))[member]
        return torch.sigmoid(logits.float()).cpu().numpy().reshape(-1, *IMAGE_SHAPE)

    return Codec(encode=encode, decode=decode)


def traversal(
    codec: Codec, image: np.ndarray, context: np.ndarray, steps: int = 9
) -> tuple[np.ndarray, list[str]]:
    """Decode ``image``'s code with one latent at a time swept across its range.

    The range of each latent is the 2nd–98th percentile of the codes of ``context`` images,
    so it fits any prior (Gaussian or the uniform WAE's box). Returns the pictures
    (d, steps, 64, 64), rows ordered by that spread (most used latents first), and a label
    per row naming the latent and its range.
    """
    codes = codec.encode(context)
    low, high = np.percentile(codes, [2, 98], axis=0)
    spread = high - low
    order = np.argsort(-spread, kind="mergesort")
    base = codec.encode(image[None])[0]
    grid = np.linspace(0.0, 1.0, steps)
    pictures = []
    for dim in order:
        z = np.repeat(base[None, :], steps, axis=0)
        z[:, dim] = low[dim] + grid * spread[dim]
        pictures.append(codec.decode(z))
    labels = [f"z{dim}: {low[dim]:+.2f} … {high[dim]:+.2f}" for dim in order]
    return np.stack(pictures), labels
