"""The dSprites factor grid: names, sizes, values and the official image ordering.

Every part of the project (renderer, loaders, sampling, metrics) takes the grid from here,
so an official file and a generated one are indexed identically.
"""

from __future__ import annotations

import numpy as np

FACTOR_NAMES: tuple[str, ...] = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (1, 3, 6, 40, 32, 32)
N_IMAGES: int = int(np.prod(FACTOR_SIZES))  # 737,280
IMAGE_SIZE: int = 64
# Row-major over the factor classes, posY fastest: index = classes @ BASES.
BASES: np.ndarray = np.array(
    [int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(len(FACTOR_SIZES))], dtype=np.int64
)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")


def factor_values() -> list[np.ndarray]:
    """The official value of every class of every factor (float64), in column order."""
    return [
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2.0 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


def index_of(classes: np.ndarray) -> np.ndarray:
    """Flat image index of each row of factor classes (n, 6) -> (n,)."""
    classes = np.asarray(classes, dtype=np.int64)
    return classes @ BASES


def classes_of(index: np.ndarray) -> np.ndarray:
    """Factor classes (n, 6) of flat image indices (n,); inverse of `index_of`."""
    index = np.asarray(index, dtype=np.int64)
    return (index[:, None] // BASES[None, :]) % np.asarray(FACTOR_SIZES, dtype=np.int64)


def all_classes(start: int = 0, stop: int = N_IMAGES) -> np.ndarray:
    """The official `latents_classes` rows for images start..stop-1, (n, 6) int64."""
    return classes_of(np.arange(start, stop, dtype=np.int64))


def all_values(start: int = 0, stop: int = N_IMAGES) -> np.ndarray:
    """The official `latents_values` rows for images start..stop-1, (n, 6) float64."""
    classes = all_classes(start, stop)
    values = factor_values()
    return np.stack([values[j][classes[:, j]] for j in range(len(FACTOR_SIZES))], axis=1)
