"""The β-VAE (Higgins et al. 2017): recon + β·KL, the seed paper's baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.pack import PackTrainer


@dataclass(frozen=True, kw_only=True)
class BetaVae(Family):
    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import kl_standard_normal

        kl = kl_standard_normal(forward.mean, forward.spread)
        return Losses(forward.recon + trainer.value * kl, forward.recon)


BETA_VAE = BetaVae(
    name="beta_vae", summary="β·KL", param="beta", symbol="β", colour="tab:red",
    grid=(1, 3, 10, 20, 30, 40, 50, 75, 100),  # the seed paper's §2
    bounds=(1.0, 100.0),
    paper={"best_5var": 0.854, "best_5var_recon_test": "156.1 ± 5.7",
           "recon_train_98": "114.8 ± 5.2"},
)
