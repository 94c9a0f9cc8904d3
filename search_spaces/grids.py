"""The hyperparameter grids of the seed paper and of the field's large study, as data."""

from __future__ import annotations

from typing import Any

from trainables.config import PARAM_OF

# Seed paper §2: β ∈ {1, 3, 10, 20, 30, 40, 50, 75, 100}; λ1 ∈ {0, 0.1, 0.5, 1, 2, 3, 5, 8, 12}.
PAPER_BETAS: tuple[float, ...] = (1, 3, 10, 20, 30, 40, 50, 75, 100)
PAPER_LAMBDA1S: tuple[float, ...] = (0, 0.1, 0.5, 1, 2, 3, 5, 8, 12)
PAPER_GRID: dict[str, tuple[float, ...]] = {
    "beta_vae": PAPER_BETAS,
    "wae_gaussian": PAPER_LAMBDA1S,
    "wae_uniform": PAPER_LAMBDA1S,
}
# Locatello et al. 2019 (disentanglement_lib's unsupervised_study_v1), for the families the
# seed did not train: β-TCVAE β, DIP-VAE λ_od (λ_d = 10·λ_od for I, λ_od for II), AnnealedVAE
# c_max (γ = 1000), FactorVAE γ.
BASELINE_GRID: dict[str, tuple[float, ...]] = {
    "beta_tcvae": (1, 2, 4, 6, 8, 10),
    "dip_vae_i": (1, 2, 5, 10, 20, 50),
    "dip_vae_ii": (1, 2, 5, 10, 20, 50),
    "annealed_vae": (5, 10, 25, 50, 75, 100),
    "factor_vae": (10, 20, 30, 40, 50, 100),
}
DEFAULT_GRID: dict[str, tuple[float, ...]] = {**PAPER_GRID, **BASELINE_GRID}


def grid_points(grid: dict[str, list[float]], families: list[str]) -> list[tuple[str, float]]:
    """(family, value) pairs in a fixed order: families as listed, values as listed."""
    return [(family, float(value)) for family in families for value in grid[family]]


def param_bounds(table: dict[str, Any], family: str) -> tuple[float, float]:
    """[min, max] of the family's parameter (`PARAM_OF`) in an [adaptive] or [pbt] table:
    its `<param>_min`, `<param>_max`."""
    param = PARAM_OF[family]
    return float(table[f"{param}_min"]), float(table[f"{param}_max"])
