"""The hyperparameter grids of the seed paper, as data."""

from __future__ import annotations

# Seed paper §2: β ∈ {1, 3, 10, 20, 30, 40, 50, 75, 100}; λ1 ∈ {0, 0.1, 0.5, 1, 2, 3, 5, 8, 12}.
PAPER_BETAS: tuple[float, ...] = (1, 3, 10, 20, 30, 40, 50, 75, 100)
PAPER_LAMBDA1S: tuple[float, ...] = (0, 0.1, 0.5, 1, 2, 3, 5, 8, 12)
PAPER_GRID: dict[str, tuple[float, ...]] = {
    "beta_vae": PAPER_BETAS,
    "wae_gaussian": PAPER_LAMBDA1S,
    "wae_uniform": PAPER_LAMBDA1S,
}


def grid_points(grid: dict[str, list[float]], families: list[str]) -> list[tuple[str, float]]:
    """(family, value) pairs in a fixed order: families as listed, values as listed."""
    return [(family, float(value)) for family in families for value in grid[family]]
