"""The Wasserstein auto-encoders the seed paper studies (Rubenstein et al. 2018): recon +
λ_MMD·MMD(codes, prior samples) + λ1·mean_n Σ_i |spread_i|^p, the L1 penalty on the
unclipped spread that keeps the encoders from collapsing to points.

The two differ only in their encoder and prior (`Family.uniform`), so they are one class and
two instances: the Gaussian encoder with an N(0, I) prior, and the box encoder with a
U[-1, 1]^d prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainables.families.base import Family, Forward, Losses

if TYPE_CHECKING:
    from trainables.pack import PackTrainer

# λ1 ∈ {0, 0.1, 0.5, 1, 2, 3, 5, 8, 12}: the seed paper's §2.
PAPER_LAMBDA1S: tuple[float, ...] = (0, 0.1, 0.5, 1, 2, 3, 5, 8, 12)
# The paper's "WAE" headline numbers (§3), placed beside both WAE families (its Figure 2
# shows the Gaussian WAE).
PAPER_WAE = {"best_5var": 0.988, "best_5var_recon_test": "94.0 ± 5.8",
             "recon_train_98": "40.8 ± 1.5"}


@dataclass(frozen=True, kw_only=True)
class Wae(Family):
    wae: bool = True

    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        from trainables.losses import mmd_imq, spread_penalty

        cfg, recon = trainer.cfg, forward.recon
        mmd = mmd_imq(forward.z, forward.batch.prior, trainer.scales, cfg.mmd_estimator)
        penalty = spread_penalty(forward.spread, cfg.penalty_p)
        return Losses(recon + cfg.lambda_mmd * mmd + trainer.value * penalty, recon)


WAE_GAUSSIAN = Wae(
    name="wae_gaussian", summary="Gaussian encoder, N(0,I) prior, MMD", param="lambda1",
    symbol="λ1", colour="tab:blue", grid=PAPER_LAMBDA1S, bounds=(0.0, 12.0), paper=PAPER_WAE)
WAE_UNIFORM = Wae(
    name="wae_uniform", summary="box encoder, U[-1,1]^d prior, MMD", param="lambda1",
    symbol="λ1", colour="tab:green", grid=PAPER_LAMBDA1S, bounds=(0.0, 12.0), paper=PAPER_WAE,
    uniform=True)
