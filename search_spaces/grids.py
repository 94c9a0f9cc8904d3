"""The default grids, read off the families (`Family.grid`): the seed paper's for its three
families, Locatello et al. 2019's (disentanglement_lib's unsupervised_study_v1) for the rest."""

from __future__ import annotations

from typing import Any

from trainables.config import PARAM_OF, SEED_FAMILIES
from trainables.families import FAMILIES

DEFAULT_GRID: dict[str, tuple[float, ...]] = {name: f.grid for name, f in FAMILIES.items()}
PAPER_GRID: dict[str, tuple[float, ...]] = {name: DEFAULT_GRID[name] for name in SEED_FAMILIES}
BASELINE_GRID: dict[str, tuple[float, ...]] = {
    name: grid for name, grid in DEFAULT_GRID.items() if name not in PAPER_GRID}


def grid_points(grid: dict[str, list[float]], families: list[str]) -> list[tuple[str, float]]:
    """(family, value) pairs in a fixed order: families as listed, values as listed."""
    return [(family, float(value)) for family in families for value in grid[family]]


def param_bounds(table: dict[str, Any], family: str) -> tuple[float, float]:
    """[min, max] of the family's parameter (`PARAM_OF`) in an [adaptive] or [pbt] table:
    its `<param>_min`, `<param>_max`."""
    param = PARAM_OF[family]
    return float(table[f"{param}_min"]), float(table[f"{param}_max"])
