"""DIP-VAE I and II (Kumar et al. 2018) as disentanglement_lib: recon + KL + a penalty on
the covariance of the encoder's means (I) or of its codes (II) away from the identity:
λ_od on the off-diagonal, λ_d on the diagonal.

One class, two instances: the variants differ only in the covariance penalised and in λ_d.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.pack import PackTrainer

GRID: tuple[float, ...] = (1, 2, 5, 10, 20, 50)  # λ_od, Locatello et al. 2019's study


@dataclass(frozen=True, kw_only=True)
class DipVae(Family):
    variant: str  # "i": Cov[μ]; "ii": Cov[z] (`trainables.losses.dip_covariance_penalty`)
    diagonal: float  # λ_d as a multiple of λ_od (disentanglement_lib's study)

    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import dip_covariance_penalty, kl_standard_normal

        mean, logvar, value = forward.mean, forward.spread, trainer.value
        kl = kl_standard_normal(mean, logvar)
        penalty = dip_covariance_penalty(mean, logvar, value, self.diagonal * value,
                                         self.variant)
        return Losses(forward.recon + (kl + penalty), forward.recon)


DIP_VAE_I = DipVae(
    name="dip_vae_i", summary="KL + the covariance penalty of Cov[μ], λ_d = 10·λ_od",
    param="lambda_od", symbol="λ_od", colour="tab:purple", grid=GRID, bounds=(1.0, 50.0),
    variant="i", diagonal=10.0)
DIP_VAE_II = DipVae(
    name="dip_vae_ii", summary="KL + the covariance penalty of Cov[z], λ_d = λ_od",
    param="lambda_od", symbol="λ_od", colour="tab:brown", grid=GRID, bounds=(1.0, 50.0),
    variant="ii", diagonal=1.0)
