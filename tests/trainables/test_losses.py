"""Loss terms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from trainables import losses
from trainables.losses import (
    bernoulli_reconstruction,
    imq_scales,
    kl_standard_normal,
    mmd_imq,
    spread_penalty,
)


def test_bce_of_zero_logits_is_4096_ln2_for_any_image():
    x = torch.randint(0, 2, (3, 5, 4096)).float()
    recon = bernoulli_reconstruction(torch.zeros(3, 5, 4096), x)
    assert recon.shape == (3,)
    torch.testing.assert_close(recon, torch.full((3,), 4096 * math.log(2.0)))


def test_bce_sums_pixels_and_averages_the_batch():
    logits = torch.tensor([[[2.0, -1.0], [0.0, 0.0]]])  # K=1, B=2, P=2
    x = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    first = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))
    expected = (first + 2 * math.log(2.0)) / 2
    torch.testing.assert_close(bernoulli_reconstruction(logits, x), torch.tensor([expected]))


def test_kl_of_the_prior_is_zero_and_matches_the_1d_closed_form():
    assert torch.equal(kl_standard_normal(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)),
                       torch.zeros(2))
    mu, var = 0.7, 2.5  # KL(N(mu, var) || N(0, 1)) = (var + mu² - 1 - ln var) / 2
    kl = kl_standard_normal(torch.tensor([[[mu]]]), torch.tensor([[[math.log(var)]]]))
    torch.testing.assert_close(kl, torch.tensor([(var + mu**2 - 1 - math.log(var)) / 2]))


def test_spread_penalty_is_mean_over_batch_of_summed_abs_power():
    spread = torch.tensor([[[1.0, -2.0], [-3.0, 0.5]]])  # K=1, B=2, d=2
    torch.testing.assert_close(spread_penalty(spread, 1.0), torch.tensor([(3.0 + 3.5) / 2]))
    torch.testing.assert_close(spread_penalty(spread, 2.0), torch.tensor([(5.0 + 9.25) / 2]))


def _imq(a: float, b: float, scales: list[float]) -> float:
    return sum(c / (c + (a - b) ** 2) for c in scales)


@pytest.mark.parametrize("estimator", ["authors", "wae_paper"])
def test_mmd_on_two_points_by_hand(estimator):
    q, p = [0.0, 1.0], [0.5, 3.0]  # d = 1, n = 2
    scales = imq_scales(estimator, latent_dim=1)
    c = scales.tolist()
    if estimator == "authors":
        torch.testing.assert_close(scales, torch.tensor([0.001, 0.005, 0.01, 0.05, 0.1, 0.2,
                                                         0.5, 0.8, 1.0, 2.0]))
        cross = (_imq(q[0], p[1], c) + _imq(q[1], p[0], c)) / 2  # diagonal q_i, p_i dropped
    else:
        torch.testing.assert_close(scales, torch.tensor([0.2, 0.4, 1.0, 2.0, 4.0, 10.0, 20.0]))
        cross = sum(_imq(a, b, c) for a in q for b in p) / 4
    within = (2 * _imq(q[0], q[1], c) + 2 * _imq(p[0], p[1], c)) / 2
    expected = within - 2 * cross
    got = mmd_imq(torch.tensor([[[v] for v in q]]), torch.tensor([[[v] for v in p]]),
                  scales, estimator)
    torch.testing.assert_close(got, torch.tensor([expected], dtype=torch.float32))


def test_mmd_is_per_member_and_zero_when_codes_equal_prior_samples():
    torch.manual_seed(0)
    q = torch.randn(3, 6, 4)
    p = torch.randn(3, 6, 4)
    scales = imq_scales("authors", 4)
    together = mmd_imq(q, p, scales, "authors")
    alone = torch.cat([mmd_imq(q[k : k + 1], p[k : k + 1], scales, "authors") for k in range(3)])
    torch.testing.assert_close(together, alone)
    # With q == p the cross term (diagonal dropped) equals the within terms: MMD = 0.
    torch.testing.assert_close(mmd_imq(q, q, scales, "authors"), torch.zeros(3),
                               atol=1e-5, rtol=0)


def test_three_points_in_two_dimensions_match_a_direct_double_loop():
    q = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    p = torch.tensor([[[0.5, 0.5], [-1.0, 0.0], [1.0, 1.0]]])
    for estimator in ("authors", "wae_paper"):
        scales = imq_scales(estimator, 2)

        def k(a, b, scales=scales):
            return float((scales / (scales + ((a - b) ** 2).sum())).sum())

        n = 3
        within = sum(k(q[0, i], q[0, j]) + k(p[0, i], p[0, j])
                     for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        if estimator == "authors":
            cross = sum(k(q[0, i], p[0, j]) for i in range(n) for j in range(n) if i != j)
            cross /= n * (n - 1)
        else:
            cross = sum(k(q[0, i], p[0, j]) for i in range(n) for j in range(n)) / n**2
        torch.testing.assert_close(mmd_imq(q, p, scales, estimator),
                                   torch.tensor([within - 2 * cross]))


# ---- the field's other objectives (disentanglement_lib's formulas) ----------------------
def brute_force_tc(z, mean, logvar, dataset_size):
    """Minibatch-weighted sampling written out with loops, for one member."""
    b, d = len(z), len(z[0])

    def log_n(x, m, lv):
        return -0.5 * (math.log(2 * math.pi) + lv + (x - m) ** 2 / math.exp(lv))

    def log_mean_exp(values):  # log((1 / (N·B)) Σ exp(v))
        top = max(values)
        return top + math.log(sum(math.exp(v - top) for v in values)) - math.log(dataset_size * b)

    total = 0.0
    for i in range(b):
        joint = log_mean_exp([sum(log_n(z[i][k], mean[j][k], logvar[j][k]) for k in range(d))
                              for j in range(b)])
        marginals = sum(log_mean_exp([log_n(z[i][k], mean[j][k], logvar[j][k])
                                      for j in range(b)]) for k in range(d))
        total += joint - marginals
    return total / b


def test_total_correlation_is_minibatch_weighted_sampling():
    gen = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(2, 5, 3, generator=gen)
    got = losses.total_correlation(z.double(), mean.double(), logvar.double(), 1000)
    for k in range(2):
        expected = brute_force_tc(z[k].tolist(), mean[k].tolist(), logvar[k].tolist(), 1000)
        assert got[k].item() == pytest.approx(expected, rel=1e-9)


def test_total_correlation_of_one_latent_is_zero():
    mean, logvar = torch.randn(1, 6, 1), torch.randn(1, 6, 1)
    z = torch.randn(1, 6, 1)
    assert losses.total_correlation(z, mean, logvar, 500).abs().item() < 1e-5


@pytest.mark.parametrize(("means", "logvar", "variant", "expected"), [
    # Cov[μ] = [[1, 0], [0, 0]]: only the second diagonal entry misses 1
    ([[1.0, 0.0], [-1.0, 0.0]], 0.0, "i", "lambda_d"),
    # + E[σ²] = 1 on the diagonal: diag (2, 1)
    ([[1.0, 0.0], [-1.0, 0.0]], 0.0, "ii", "lambda_d"),
    # Cov[μ] = [[1, 1], [1, 1]]: two off-diagonal ones, a unit diagonal
    ([[1.0, 1.0], [-1.0, -1.0]], 0.0, "i", "2 lambda_od"),
    # logvar = log 3 adds 3: diag (4, 4) -> λ_d·(9 + 9), off-diagonal 2
    ([[1.0, 1.0], [-1.0, -1.0]], math.log(3.0), "ii", "2 lambda_od + 18 lambda_d"),
])
def test_dip_covariance_penalty_by_hand(means, logvar, variant, expected):
    lambda_od, lambda_d = torch.tensor([2.0]), torch.tensor([5.0])
    mean = torch.tensor([means])
    got = losses.dip_covariance_penalty(mean, torch.full_like(mean, logvar), lambda_od,
                                        lambda_d, variant).item()
    value = {"lambda_d": 5.0, "2 lambda_od": 4.0, "2 lambda_od + 18 lambda_d": 94.0}[expected]
    assert got == pytest.approx(value, rel=1e-6)


def test_annealed_capacity_rises_linearly_then_holds():
    c_max = torch.tensor([10.0, 50.0])
    assert losses.annealed_capacity(c_max, 0, 100).tolist() == [0.0, 0.0]
    assert losses.annealed_capacity(c_max, 25, 100).tolist() == [2.5, 12.5]
    assert losses.annealed_capacity(c_max, 100, 100).tolist() == [10.0, 50.0]
    assert losses.annealed_capacity(c_max, 500, 100).tolist() == [10.0, 50.0]


def test_factor_vae_tc_estimate_is_the_mean_logit_difference():
    logits = torch.tensor([[[2.0, -1.0], [0.5, 0.5]], [[0.0, 4.0], [1.0, 0.0]]])  # K=2, B=2
    torch.testing.assert_close(losses.density_ratio_tc(logits), torch.tensor([1.5, -1.5]))


def test_discriminator_loss_by_hand():
    """Chance logits give log 2; confident right answers give ~0 and, clipped at 1e-6,
    confident wrong ones −log(1e-6) per half."""
    zeros = torch.zeros(1, 3, 2)
    torch.testing.assert_close(losses.discriminator_loss(zeros, zeros),
                               torch.tensor([math.log(2.0)]))
    right_real, right_shuffled = torch.tensor([[[50.0, 0.0]]]), torch.tensor([[[0.0, 50.0]]])
    assert losses.discriminator_loss(right_real, right_shuffled).item() == pytest.approx(
        -math.log(1 - 1e-6), abs=1e-6)
    torch.testing.assert_close(losses.discriminator_loss(right_shuffled, right_real),
                               torch.tensor([-math.log(1e-6)]))
    # one real code at p_real = e/(1+e) and one shuffled at p_shuffled = 1/2
    real, shuffled = torch.tensor([[[1.0, 0.0]]]), torch.zeros(1, 1, 2)
    expected = -0.5 * (math.log(math.e / (1 + math.e)) + math.log(0.5))
    assert losses.discriminator_loss(real, shuffled).item() == pytest.approx(expected)


def test_shuffle_latents_permutes_each_latent_on_its_own():
    z = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    order = torch.tensor([[[1, 0, 3], [0, 1, 2], [3, 2, 1], [2, 3, 0]]] * 2)
    shuffled = losses.shuffle_latents(z, order)
    assert shuffled[0, :, 0].tolist() == [3.0, 0.0, 9.0, 6.0]  # column 0 in order 1, 0, 3, 2
    assert shuffled[1, 0].tolist() == [15.0, 13.0, 23.0]  # member 1's rows 1, 0, 3
    for k in range(2):  # each column holds the same values, reordered
        assert torch.equal(shuffled[k].sort(0).values, z[k].sort(0).values)
