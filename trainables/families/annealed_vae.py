"""AnnealedVAE (Burgess et al. 2018) as disentanglement_lib: recon + γ·|KL − C|, the
capacity C raised linearly from 0 to c_max over `annealing_steps`, then held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.pack import PackTrainer


@dataclass(frozen=True, kw_only=True)
class AnnealedVae(Family):
    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import annealed_capacity, kl_standard_normal

        cfg = trainer.cfg
        kl = kl_standard_normal(forward.mean, forward.spread)
        capacity = annealed_capacity(trainer.value, trainer.step, cfg.annealing_steps)
        return Losses(forward.recon + cfg.annealed_gamma * (kl - capacity).abs(),
                      forward.recon)


ANNEALED_VAE = AnnealedVae(
    name="annealed_vae", summary="γ·|KL − C|, C raised to c_max", param="c_max",
    symbol="C_max", colour="tab:pink",
    grid=(5, 10, 25, 50, 75, 100),  # Locatello et al. 2019's study (γ = 1000)
    bounds=(5.0, 100.0))
