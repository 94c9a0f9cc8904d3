"""The training families, one module per objective (`base.Family` says what each defines).

`FAMILIES` is the registry every other module reads, in the order reports list them (the
seed paper's three first). A new family is a module here, its line below, and its tests.
"""

from __future__ import annotations

from trainables.families.annealed_vae import ANNEALED_VAE
from trainables.families.base import Family, Forward, Losses
from trainables.families.beta_tcvae import BETA_TCVAE
from trainables.families.beta_vae import BETA_VAE
from trainables.families.dip_vae import DIP_VAE_I, DIP_VAE_II
from trainables.families.factor_vae import FACTOR_VAE
from trainables.families.wae import WAE_GAUSSIAN, WAE_UNIFORM

FAMILIES: dict[str, Family] = {family.name: family for family in (
    BETA_VAE, WAE_GAUSSIAN, WAE_UNIFORM, BETA_TCVAE, DIP_VAE_I, DIP_VAE_II, ANNEALED_VAE,
    FACTOR_VAE)}

__all__ = ["FAMILIES", "Family", "Forward", "Losses"]
