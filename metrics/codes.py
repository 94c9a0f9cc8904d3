"""Sampling factor classes, encoding each needed image once, and looking codes up again.

Every metric is split in two so that several metrics, and the K members of a pack, share the
images they need:

1. *plan*: a metric draws factor classes through a `Sampler` under named keys and returns a
   `Plan` (the keys it needs codes for and a scoring closure). A key's draw depends only on
   `(seed, key)`, so two metrics asking for the same key (e.g. MIG, DCI and SAP all use
   `("points", "train", 10000)`) get the same classes, and a metric scores the same alone as
   inside a suite.
2. *score*: `Sampler.index_set()` turns all drawn classes into the sorted unique dataset indices
   (`IndexSet.indices`); the caller encodes those images once (`encode_indices`), with one
   model (U, d) or a pack (K, U, d); `IndexSet.table(codes)` gives a `CodeTable` from which
   each plan gathers the codes of its draws.

Scoring (the classifier fits) runs single-threaded (`single_threaded`): its operations are
small (at most ~10^5 elements), where thread synchronisation costs more than it saves; on the
shared 2-core development machine two threads made Adagrad steps and histogram-boosted trees
10-15x slower than one.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

Key = tuple[Hashable, ...]
Encode = Callable[[np.ndarray], Any]
CHUNK_SIZE = 16_384  # images per `encode` call: 64 MB of uint8 pixels, large enough to batch

def latent_factors(data: Any) -> tuple[int, ...]:
    """Indices of the ground-truth factors a metric scores: the dataset's `latent_factors`
    (its nuisance factors left out); for a data object that does not say, every factor with
    more than one value (dSprites: shape..posY)."""
    declared = getattr(data, "latent_factors", None)
    if declared is not None:
        return tuple(declared)
    return tuple(i for i, size in enumerate(data.factor_sizes) if size > 1)


def higgins_tasks(data: Any) -> dict[str, tuple[int, ...]]:
    """The Higgins tasks of a dataset, name -> the factors voted on: its `tasks` (dSprites:
    `5var` and `4var`, `trainables.datasets`); for a data object that does not say, one task
    over every latent factor, named for their count (dSprites' grid: `5var`)."""
    declared = getattr(data, "tasks", None)
    if declared is not None:
        return dict(declared)
    factors = latent_factors(data)
    return {f"{len(factors)}var": factors}


def rng_for(seed: int, key: Key) -> np.random.Generator:
    """A generator that depends only on (seed, key): stable across processes (no `hash`)."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def derived_seed(seed: int, key: Key) -> int:
    """An integer seed (for an initialisation or a scikit-learn model) from (seed, key)."""
    return int(rng_for(seed, key).integers(2**31 - 1))


@dataclass(frozen=True)
class Draw:
    """Factor classes (..., n_factors) whose images need codes, with optional vote labels."""

    classes: np.ndarray
    labels: np.ndarray | None = None


class Sampler:
    """Draws factor classes reproducibly per key and caches them, so metrics share draws."""

    def __init__(self, data: Any, seed: int = 0) -> None:
        self.data = data
        self.seed = seed
        self._draws: dict[Key, Draw] = {}

    def draw(self, key: Key, make: Callable[[np.random.Generator], Draw]) -> Draw:
        """The draw under `key`, made once with the generator `rng_for(seed, key)`."""
        if key not in self._draws:
            self._draws[key] = make(rng_for(self.seed, key))
        return self._draws[key]

    def get(self, key: Key) -> Draw:
        """The draw already made under `key`."""
        return self._draws[key]

    def points(self, split: str, n: int) -> Key:
        """Key of `n` uniform factor vectors (split names independent samples)."""
        key: Key = ("points", split, n)
        self.draw(key, lambda rng: Draw(self.data.sample_classes(n, rng)))
        return key

    def index_set(self, keys: Sequence[Key]) -> IndexSet:
        """The unique dataset indices behind the draws of `keys` and where each draw maps."""
        keys = list(dict.fromkeys(keys))
        draws = [self._draws[k] for k in keys]
        flat = [np.asarray(self.data.index_of(d.classes.reshape(-1, d.classes.shape[-1])))
                for d in draws]
        all_idx = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
        indices, inverse = np.unique(all_idx, return_inverse=True)
        positions, start = {}, 0
        for key, draw, part in zip(keys, draws, flat, strict=True):
            positions[key] = inverse[start : start + len(part)].reshape(draw.classes.shape[:-1])
            start += len(part)
        return IndexSet(indices=indices, positions=positions, n_draws=len(all_idx))


@dataclass(frozen=True)
class IndexSet:
    """Sorted unique image indices to encode, and each key's positions into them."""

    indices: np.ndarray
    positions: dict[Key, np.ndarray]
    n_draws: int

    def table(self, codes: Any) -> CodeTable:
        """Wrap codes of `indices`: (U, d) for one model or (K, U, d) for a pack."""
        codes = as_numpy(codes)
        if codes.ndim == 2:
            codes = codes[None]
        if codes.ndim != 3 or codes.shape[1] != len(self.indices):
            raise ValueError(f"codes must be (U, d) or (K, U, d) with U = {len(self.indices)}, "
                             f"got {codes.shape}")
        return CodeTable(codes=codes, positions=self.positions)


@dataclass(frozen=True)
class CodeTable:
    """Codes of the unique images of one or K models, gathered per draw key."""

    codes: np.ndarray  # (K, U, d)
    positions: dict[Key, np.ndarray]

    @property
    def members(self) -> int:
        return self.codes.shape[0]

    def get(self, key: Key, member: int) -> np.ndarray:
        """Codes of member's draw `key`, shaped (*draw.classes.shape[:-1], d), float64."""
        return self.codes[member][self.positions[key]].astype(np.float64)


@dataclass(frozen=True)
class Plan:
    """What one metric needs encoded (draw keys) and how it scores a CodeTable."""

    keys: tuple[Key, ...]
    scorer: Callable[[CodeTable], list[dict]]

    def score(self, table: CodeTable) -> list[dict]:
        """One result dict per member of the table."""
        with single_threaded():
            return self.scorer(table)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch, BLAS and OpenMP on one thread inside, restoring the settings after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def as_numpy(x: Any) -> np.ndarray:
    """A numpy view of an array or (possibly device, possibly bf16) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def encode_indices(encode: Encode, data: Any, indices: np.ndarray,
                   chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """Codes of the images `indices`, float32, (U, d) (or (K, U, d) if `encode` returns packs).

    Images are unpacked and encoded `chunk_size` at a time, so memory stays bounded even when
    the whole dataset is needed.
    """
    parts = [as_numpy(encode(data.images(indices[i : i + chunk_size]))).astype(np.float32)
             for i in range(0, len(indices), chunk_size)]
    if not parts:
        raise ValueError("no images to encode")
    return np.concatenate(parts, axis=-2)


def run_plan(plan_fn: Callable[..., Plan], encode: Encode, data: Any, seed: int,
             options: dict[str, Any]) -> dict:
    """Plan, encode and score one metric for one model (the `NAME(encode, data)` entry point)."""
    options = dict(options)
    chunk_size = options.pop("chunk_size", CHUNK_SIZE)
    sampler = Sampler(data, seed)
    plan = plan_fn(sampler, **options)
    index_set = sampler.index_set(plan.keys)
    codes = encode_indices(encode, data, index_set.indices, chunk_size)
    return plan.score(index_set.table(codes))[0]
