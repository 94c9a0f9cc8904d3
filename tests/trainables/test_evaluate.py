"""What a pack's evaluation measures: the columns of its dataset's Higgins tasks, the metrics'
codes, sampled against posterior-mean reconstruction on models with closed-form answers, and
the L1 penalty at the clip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metrics
from trainables.columns import ROW_KEYS, scores, validation_scores
from trainables.config import TrainConfig
from trainables.data import DSprites
from trainables.datasets import DATASETS
from trainables.evaluate import evaluate_pack, higgins_columns, logits_fn, pack_encoder, summarize
from trainables.models import PackModel
from trainables.pack import PackTrainer

SLOPE = 3.0  # the known decoder: every pixel's logit is SLOPE * z_0
TINY = {"family": "wae_gaussian", "value": 1.0, "replicates": 2, "batch_size": 8,
        "latent_dim": 3, "encoder_width": 8, "decoder_width": 8, "recon_eval_images": 64,
        "higgins_votes": 60, "higgins_classifier_steps": 30, "device": "cpu",
        "validation_fraction": 0.5}


def test_the_higgins_metrics_are_the_datasets_tasks():
    assert higgins_columns("dsprites") == {"higgins_4var": "disentanglement_4var",
                                           "higgins_5var": "disentanglement_5var"}
    assert higgins_columns("dsprites_noshape") == {"higgins_4var": "disentanglement_4var"}


@pytest.mark.parametrize("name", ["dsprites", "dsprites_noshape"])
def test_a_pack_is_scored_on_its_datasets_tasks(random_packed, one_torch_thread, name):
    """Each row holds the scores of the trial's dataset (dSprites: the interface's columns;
    dsprites_noshape: its one task, no 5var), then its validation measures, in that order."""
    cfg = TrainConfig.from_dict({**TINY, "dataset": name})
    data = DSprites(random_packed, dataset=DATASETS[name])
    split = data.split(cfg.split_seed, cfg.test_fraction, cfg.validation_fraction)
    model = PackTrainer(cfg, data.packed, split.train).model
    rows = evaluate_pack(model, data, split, cfg, 0, [-1, 5])
    measured = [*scores(name), *validation_scores(name)]
    assert [[c for c in row if c not in ROW_KEYS] for row in rows] == [measured] * len(rows)
    healthy = [row for row in rows if not row["diverged"]]
    assert all(math.isfinite(row[c]) for row in healthy for c in measured)
    assert list(summarize(rows)) == measured


class Blank:
    """A dataset of blank images: the BCE of logit l against pixel 0 is softplus(l)."""

    def images(self, indices: np.ndarray) -> np.ndarray:
        return np.zeros((len(indices), 64, 64), dtype=np.uint8)


def known_model(family: str, mean_bias: float, spread_bias: float, k: int = 2) -> PackModel:
    """Every member encodes any image to (μ, spread) = (mean_bias, spread_bias) (tanh(μ) for
    the WAEs) in its one latent, and decodes z to SLOPE * z in every pixel."""
    model = PackModel(family, list(range(k)), latent_dim=1, encoder_width=4, decoder_width=4,
                      logvar_clip=[-16.0, 10.0])
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.enc_head_bias[:, 0, 0] = mean_bias
        model.enc_head_bias[:, 0, 1] = spread_bias
    return model


def known_member(model: PackModel, k: int) -> PackModel:
    member = model.member(k)
    member.decode = lambda z: SLOPE * z[..., :1].expand(*z.shape[:-1], 64 * 64)
    return member


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def recon(model: PackModel, k: int, decode: str, n: int = 4000, seed: int = 0) -> float:
    return metrics.reconstruction(logits_fn(known_member(model, k), decode, seed), Blank(),
                                  indices=np.arange(n), n=n, batch_size=1000)["score"]


@pytest.mark.parametrize("family", ["beta_vae", "wae_gaussian"])
def test_gaussian_sampled_reconstruction_is_the_expectation_over_the_posterior(family):
    sigma = 1.5
    model = known_model(family, 0.0, 2 * math.log(sigma))
    # E[4096 softplus(SLOPE σ ε)], ε ~ N(0, 1), by Gauss-Hermite quadrature
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    per_pixel = softplus(SLOPE * sigma * nodes)
    expected = 4096 * float(weights @ per_pixel / weights.sum())
    spread = 4096 * math.sqrt(float(weights @ per_pixel**2 / weights.sum())
                              - (expected / 4096) ** 2)
    sampled = recon(model, 0, "sample")
    assert sampled == pytest.approx(expected, abs=4 * spread / math.sqrt(4000))
    assert recon(model, 0, "mean") == pytest.approx(4096 * math.log(2), rel=1e-6)
    assert sampled > recon(model, 0, "mean") + 1000  # the gap the seed's numbers hold
    # every member decodes the same noise; another seed draws other noise
    assert recon(model, 1, "sample") == sampled
    assert recon(model, 0, "sample", seed=1) != sampled


def test_uniform_box_reconstructions_and_codes():
    side = 2.0
    model = known_model("wae_uniform", 0.0, math.log(side))  # μ = tanh(0) = 0: box [0, 2]
    grid = (np.arange(100_000) + 0.5) / 100_000  # u ~ U(0, 1), midpoint rule
    expected = 4096 * float(softplus(SLOPE * side * grid).mean())
    assert recon(model, 0, "sample") == pytest.approx(expected, rel=0.01)
    # the posterior mean of the corner box is its centre
    assert recon(model, 0, "mean") == pytest.approx(4096 * softplus(SLOPE * side / 2))
    images = np.zeros((3, 64, 64), dtype=np.uint8)
    assert np.allclose(pack_encoder(model, [0, 1])(images), 0.0)  # the authors' z_mean
    assert np.allclose(pack_encoder(model, [0, 1], "centre")(images), side / 2)


def test_wae_penalty_keeps_its_gradient_beyond_the_clip():
    lam = 2.5
    cfg = TrainConfig(family="wae_gaussian", value=lam, latent_dim=2, encoder_width=4,
                      decoder_width=4, batch_size=4, logvar_clip=[-16.0, 10.0])
    packed = np.zeros((8, 512), dtype=np.uint8)
    trainer = PackTrainer(cfg, packed, np.arange(8))
    with torch.no_grad():
        trainer.model.enc_head_weight.zero_()
        trainer.model.enc_head_bias[:, 0, 2:] = torch.tensor([-20.0, 12.0])  # below, above
    trainer.member_losses(trainer.draw_batch()).total.sum().backward()
    grad = trainer.model.enc_head_bias.grad[0, 0, 2:]
    # beyond the clip the sample sees no change: all that is left is λ1·d|s|/ds = ∓λ1
    assert grad.tolist() == pytest.approx([-lam, lam])
