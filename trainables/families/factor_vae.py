"""FactorVAE (Kim & Mnih 2018) as disentanglement_lib: recon + KL + γ·the total correlation
its discriminator estimates from the density ratio of real against shuffled codes; the
pack trains K discriminators beside the VAEs (`PackTrainer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.config import TrainConfig
    from trainables.pack import PackTrainer

# The shuffled batch permutes each latent across the batch on its own: a shuffled code copies
# one real code whole with probability B^(1−d) (all d latents drawn from the same row), i.e.
# a real sample labelled "shuffled". A batch must keep that below 1 %.
MAX_SHUFFLE_COPIES = 0.01


@dataclass(frozen=True, kw_only=True)
class FactorVae(Family):
    discriminator: bool = True

    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import (
            density_ratio_tc,
            discriminator_loss,
            kl_standard_normal,
            shuffle_latents,
        )

        z, recon = forward.z, forward.recon
        real = trainer.discriminator(z)
        shuffled = trainer.discriminator(shuffle_latents(z.detach(), forward.batch.order))
        total = (recon + kl_standard_normal(forward.mean, forward.spread)
                 + trainer.value * density_ratio_tc(real))
        return Losses(total, recon, discriminator_loss(real, shuffled))

    def check(self, cfg: TrainConfig) -> None:
        """Shuffled codes that copy a real one whole at most `MAX_SHUFFLE_COPIES` of the time."""
        b, d = cfg.batch_size, cfg.latent_dim
        if d < 2 or b ** (1 - d) > MAX_SHUFFLE_COPIES:
            low = math.ceil(MAX_SHUFFLE_COPIES ** (1 / (1 - d))) if d >= 2 else None
            fix = f"use batch_size >= {low} or more latents" if low else "use latent_dim >= 2"
            raise ValueError(
                f"factor_vae's shuffled codes would copy a real code whole too often: batch "
                f"{b}, latent_dim {d} gives B^(1-d) = {b ** (1 - d):.3g} > "
                f"{MAX_SHUFFLE_COPIES:g}: {fix}")


FACTOR_VAE = FactorVae(
    name="factor_vae", summary="KL + γ·the total correlation its discriminator estimates",
    param="gamma", symbol="γ", colour="tab:olive",
    grid=(10, 20, 30, 40, 50, 100),  # Locatello et al. 2019's study
    bounds=(10.0, 100.0))
