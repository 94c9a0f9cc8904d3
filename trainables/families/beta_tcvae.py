"""β-TCVAE (Chen et al. 2018) as disentanglement_lib: recon + KL + (β−1)·the total
correlation, estimated by minibatch-weighted sampling over the N training images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.pack import PackTrainer


@dataclass(frozen=True, kw_only=True)
class BetaTcvae(Family):
    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import kl_standard_normal, total_correlation

        mean, logvar = forward.mean, forward.spread
        kl = kl_standard_normal(mean, logvar)
        tc = total_correlation(forward.z, mean, logvar, trainer.dataset_size)
        return Losses(forward.recon + (kl + (trainer.value - 1.0) * tc), forward.recon)


BETA_TCVAE = BetaTcvae(
    name="beta_tcvae", summary="KL + (β−1)·total correlation", param="beta", symbol="β",
    colour="tab:orange", grid=(1, 2, 4, 6, 8, 10),  # Locatello et al. 2019's study
    bounds=(1.0, 100.0))
