"""Loss terms, one value per pack member: every function returns a tensor of shape [K].

Inputs carry a leading member axis (K, B, ...); nothing reduces across it, so one member's
values never reach another's loss or gradient. Every term computes in fp32 even inside the
bf16 autocast of `precision = "bf16"` (`in_fp32`), as `TrainConfig.precision` promises.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ParamSpec

import torch
import torch.nn.functional as F

# Inverse-multiquadratic kernel scales as multiples of the latent dimension d: the authors'
# code (paruby/Wasserstein-Auto-Encoders) sums C ∈ {0.001 .. 2}·d; the WAE paper's code
# (Tolstikhin et al. 2018) sums C = 2·d·σ²·{0.1 .. 10} with σ² = 1, the prior's variance.
AUTHORS_SCALES = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0)  # C = s·d
WAE_PAPER_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # C = 2·d·σ²·s, σ² = 1

P = ParamSpec("P")


def in_fp32(term: Callable[P, torch.Tensor]) -> Callable[P, torch.Tensor]:
    """`term` with autocast off on its inputs' device: bf16 autocast would run a loss's
    matmul (DIP-VAE's covariance) in bf16: 2e-3 to 1e-2 relative error in the penalty. The model
    hands the terms fp32 (its heads' `.float()`); outside autocast this changes nothing, so
    fp32 training stays bitwise as it was."""
    @functools.wraps(term)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> torch.Tensor:
        device = next(a.device.type for a in args if isinstance(a, torch.Tensor))
        with torch.autocast(device, enabled=False):
            return term(*args, **kwargs)
    return wrapped


@in_fp32
def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy summed over pixels, averaged over the batch: (K, B, P) -> [K].
    This sum in nats is the paper's "reconstruction error"."""
    bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    return bce.sum(-1).mean(-1)


@in_fp32
def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, e^logvar) ‖ N(0, I)) summed over latents, averaged over the batch -> [K]."""
    return 0.5 * (torch.exp(logvar) - logvar + mean.square() - 1.0).sum(-1).mean(-1)


def imq_scales(estimator: str, latent_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The kernel scales C of the named MMD estimator, as a tensor [S]."""
    if estimator == "authors":
        scales = [s * latent_dim for s in AUTHORS_SCALES]
    elif estimator == "wae_paper":
        scales = [2.0 * latent_dim * s for s in WAE_PAPER_SCALES]
    else:
        raise ValueError(f"unknown MMD estimator {estimator!r}: use 'authors' or 'wae_paper'")
    return torch.tensor(scales, device=device)


@in_fp32
def mmd_imq(q: torch.Tensor, p: torch.Tensor, scales: torch.Tensor, estimator: str) -> torch.Tensor:
    """MMD² between codes q and prior samples p, each (K, n, d), with the inverse-multiquadratic
    kernel k(x, y) = Σ_C C / (C + ‖x − y‖²) -> [K].

    All pairs and all scales are one broadcast expression (K, 2n, 2n, S): a Python loop of
    small ops per scale made a WAE step three times slower than a β-VAE step on an H200.
    'authors' drops the diagonal of all three blocks and divides each by n(n−1);
    'wae_paper' drops it only within qq and pp and averages the cross block over all n².
    """
    n = q.shape[1]
    z = torch.cat([q, p], dim=1)
    sq = (z.unsqueeze(2) - z.unsqueeze(1)).square().sum(-1)  # (K, 2n, 2n), exact 0 diagonal
    kernel = (scales / (scales + sq.unsqueeze(-1))).sum(-1)
    kqq, kpp, kqp = kernel[:, :n, :n], kernel[:, n:, n:], kernel[:, :n, n:]
    pairs = n * (n - 1)
    within = (kqq.sum((1, 2)) - kqq.diagonal(dim1=1, dim2=2).sum(-1)
              + kpp.sum((1, 2)) - kpp.diagonal(dim1=1, dim2=2).sum(-1)) / pairs
    if estimator == "authors":
        cross = (kqp.sum((1, 2)) - kqp.diagonal(dim1=1, dim2=2).sum(-1)) / pairs
    else:
        cross = kqp.sum((1, 2)) / (n * n)
    return within - 2.0 * cross


@in_fp32
def spread_penalty(spread: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """mean_n Σ_i |spread_i|^p (the seed's eq. 2 with spread = log σ² or log side) -> [K]."""
    magnitude = spread.abs()
    return (magnitude if p == 1 else magnitude.pow(p)).sum(-1).mean(-1)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, e^logvar), elementwise (broadcasting)."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mean).square() * torch.exp(-logvar))


@in_fp32
def total_correlation(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                      dataset_size: int) -> torch.Tensor:
    """TC(q(z)) = KL(q(z) ‖ Π_j q(z_j)) by minibatch-weighted sampling (Chen et al. 2018,
    β-TCVAE): q(z_i) ≈ (1 / (N·B)) Σ_b q(z_i | x_b) over the batch, with N the training set's
    size, and the same per latent; averaged over the batch's codes z, each (K, B, d) -> [K].
    disentanglement_lib drops the log(N·B) terms, which shifts the value by (d − 1)·log(N·B)
    but leaves every gradient as here."""
    b = z.shape[1]
    log_q = gaussian_log_density(z.unsqueeze(2), mean.unsqueeze(1), logvar.unsqueeze(1))  # K,B,B,d
    log_norm = math.log(dataset_size * b)
    log_qz = torch.logsumexp(log_q.sum(-1), dim=2) - log_norm  # (K, B)
    log_marginals = (torch.logsumexp(log_q, dim=2) - log_norm).sum(-1)  # (K, B)
    return (log_qz - log_marginals).mean(-1)


@in_fp32
def dip_covariance_penalty(mean: torch.Tensor, logvar: torch.Tensor, lambda_od: torch.Tensor,
                           lambda_d: torch.Tensor, variant: str) -> torch.Tensor:
    """DIP-VAE's moment matching of Cov[z] to the identity (Kumar et al. 2018, as
    disentanglement_lib): λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)², with C the batch covariance
    of the means (biased, over the batch) for 'i', plus the mean encoder variance on the
    diagonal for 'ii' (Cov[z] = E[Cov_q] + Cov[E_q]). Inputs (K, B, d), λs [K] -> [K]."""
    centred = mean - mean.mean(1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / mean.shape[1]  # (K, d, d)
    if variant == "ii":
        cov = cov + torch.diag_embed(torch.exp(logvar).mean(1))
    elif variant != "i":
        raise ValueError(f"DIP-VAE variant must be 'i' or 'ii', got {variant!r}")
    diagonal = cov.diagonal(dim1=1, dim2=2)
    off_diagonal = cov.square().sum((1, 2)) - diagonal.square().sum(-1)
    return lambda_od * off_diagonal + lambda_d * (diagonal - 1.0).square().sum(-1)


def annealed_capacity(c_max: torch.Tensor, step: int, capacity_steps: int) -> torch.Tensor:
    """AnnealedVAE's capacity C at a step: raised linearly from 0 to c_max over
    `capacity_steps` steps, then held (Burgess et al. 2018, as disentanglement_lib)."""
    return c_max * min(1.0, step / capacity_steps)


def shuffle_latents(z: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """FactorVAE's samples of Π_j q(z_j): each latent of each member permuted across the
    batch on its own, `order` (K, B, d) holding each column's permutation -> (K, B, d)."""
    return z.gather(1, order)


@in_fp32
def density_ratio_tc(real_logits: torch.Tensor) -> torch.Tensor:
    """FactorVAE's total correlation estimate E_q(z)[log D(z) − log(1 − D(z))], the
    discriminator's logit difference (real − shuffled) averaged over the batch: logits
    (K, B, 2) -> [K]."""
    return (real_logits[..., 0] - real_logits[..., 1]).mean(-1)


@in_fp32
def discriminator_loss(real_logits: torch.Tensor, shuffled_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's cross-entropy, real codes as class 0 and shuffled ones as class 1,
    half each: −½(E log p_real[0] + E log p_shuffled[1]), the softmax probabilities clipped to
    [1e-6, 1 − 1e-6] as disentanglement_lib's; logits (K, B, 2) -> [K]."""
    def log_prob(logits: torch.Tensor, label: int) -> torch.Tensor:
        return torch.log(logits.softmax(-1)[..., label].clamp(1e-6, 1 - 1e-6)).mean(-1)
    return -0.5 * (log_prob(real_logits, 0) + log_prob(shuffled_logits, 1))
