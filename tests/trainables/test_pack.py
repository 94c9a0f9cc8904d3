"""The pack training core without Ray: equivalence, resume, divergence isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables import checkpoint
from trainables.config import FAMILIES, TrainConfig
from trainables.families import Forward
from trainables.pack import PackTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def packed() -> np.ndarray:
    array = np.random.default_rng(0).integers(0, 256, (3000, 512), dtype=np.uint8)
    array.flags.writeable = False  # as it arrives from Ray's object store
    return array


TRAIN = np.arange(0, 3000, 2)
LOSS_TERMS = ("bernoulli_reconstruction", "kl_standard_normal", "mmd_imq", "spread_penalty",
              "total_correlation", "dip_covariance_penalty", "density_ratio_tc",
              "discriminator_loss")  # the trainables.losses terms a pack's step calls


def tiny(**overrides) -> TrainConfig:
    base = dict(family="wae_gaussian", value=1.0, replicates=1, seed=0, steps=40, batch_size=8,
                latent_dim=4, encoder_width=32, decoder_width=32, discriminator_width=16,
                lr_schedule="authors")
    return TrainConfig(**{**base, **overrides})


def train(trainer: PackTrainer, steps: int) -> PackTrainer:
    for _ in range(steps):
        trainer.train_step()
    return trainer


def member_state(trainer: PackTrainer, k: int) -> list[torch.Tensor]:
    """Member k's parameters and Adam moments (FactorVAE's: its discriminator's too)."""
    tensors = []
    for params, optimizer in ((trainer.params, trainer.optimizer),
                              (trainer.discriminator_params, trainer.discriminator_optimizer)):
        if optimizer is not None:
            tensors += [p.detach() for p in params] + optimizer.exp_avg + optimizer.exp_avg_sq
    return [t[k].clone() for t in tensors]


@pytest.mark.parametrize("architecture", ["fc", "conv"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_member_of_a_pack_follows_its_solo_trajectory(packed, family, architecture):
    pack = train(PackTrainer(tiny(family=family, replicates=3, seed=10,
                                  architecture=architecture), packed, TRAIN), 30)
    solo = train(PackTrainer(tiny(family=family, replicates=1, seed=11,
                                  architecture=architecture), packed, TRAIN), 30)
    for in_pack, alone in zip(member_state(pack, 1), member_state(solo, 0), strict=True):
        torch.testing.assert_close(in_pack, alone, rtol=1e-5, atol=1e-7)
    assert pack.read_report()["member_loss"][1] == pytest.approx(
        solo.read_report()["member_loss"][0], rel=1e-5)


def test_members_start_from_their_own_seeds(packed):
    pack = PackTrainer(tiny(replicates=2, seed=3), packed, TRAIN)
    other = PackTrainer(tiny(replicates=1, seed=4), packed, TRAIN)
    assert torch.equal(pack.model.enc1_weight[1], other.model.enc1_weight[0])
    assert not torch.equal(pack.model.enc1_weight[0], pack.model.enc1_weight[1])


@pytest.mark.parametrize("family", ["beta_vae", "wae_uniform", "annealed_vae", "factor_vae"])
def test_resume_from_a_checkpoint_is_bitwise_identical(packed, tmp_path, family):
    cfg = tiny(family=family, replicates=2, seed=5)
    straight = train(PackTrainer(cfg, packed, TRAIN), 24)

    first = train(PackTrainer(cfg, packed, TRAIN), 12)
    checkpoint.save(tmp_path, {"config": cfg.to_dict(), "trainer": first.state_dict(),
                               "rng": checkpoint.rng_state()})
    del first
    resumed = PackTrainer(cfg, packed, TRAIN)
    payload = checkpoint.load(tmp_path)
    resumed.load_state_dict(payload["trainer"])
    checkpoint.set_rng_state(payload["rng"])
    train(resumed, 12)

    for k in range(2):
        for a, b in zip(member_state(straight, k), member_state(resumed, k), strict=True):
            assert torch.equal(a, b)
    assert straight.read_report() == resumed.read_report()


def test_a_diverged_member_is_frozen_and_the_others_are_unaffected(packed):
    cfg = tiny(replicates=3, seed=20)
    clean, hurt = PackTrainer(cfg, packed, TRAIN), PackTrainer(cfg, packed, TRAIN)
    train(clean, 10).read_report()
    train(hurt, 10).read_report()
    with torch.no_grad():
        hurt.model.enc1_weight[1, 0, :] = math.nan  # member 1's loss turns NaN at step 10
    frozen_state = member_state(hurt, 1)
    train(clean, 15)
    train(hurt, 15)

    report = hurt.read_report()
    assert report["diverged_at"] == [-1, 10, -1]
    assert report["n_diverged"] == 1
    assert math.isfinite(report["loss"]) and math.isfinite(report["recon"])
    assert math.isnan(report["member_loss"][1])
    for a, b in zip(member_state(hurt, 1), frozen_state, strict=True):  # untouched since
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    for k in (0, 2):
        for a, b in zip(member_state(hurt, k), member_state(clean, k), strict=True):
            assert torch.equal(a, b)
    assert clean.read_report()["member_loss"][0] == report["member_loss"][0]


def test_adam_matches_torch_adam_for_one_member(packed):
    trainer = PackTrainer(tiny(lr_schedule=[[0, 1e-3]]), packed, TRAIN)
    reference = [p.detach().clone().requires_grad_() for p in trainer.params]
    optimiser = torch.optim.Adam(reference, lr=1e-3)
    for _ in range(3):
        loss = trainer.member_losses(trainer.draw_batch()).total
        for p in trainer.params:
            p.grad = None
        loss.sum().backward()
        for ref, p in zip(reference, trainer.params, strict=True):
            ref.grad = p.grad.clone()
        trainer.optimizer.step(1e-3, trainer.frozen.float())
        optimiser.step()
    for ref, p in zip(reference, trainer.params, strict=True):
        torch.testing.assert_close(ref.detach(), p.detach(), rtol=1e-6, atol=1e-7)


def test_bf16_autocast_trains_with_fp32_master_weights(packed):
    trainer = train(PackTrainer(tiny(precision="bf16", replicates=2), packed, TRAIN), 5)
    assert all(p.dtype == torch.float32 for p in trainer.params)
    report = trainer.read_report()
    assert report["n_diverged"] == 0 and math.isfinite(report["loss"])


def test_load_pack_and_a_corrupt_checkpoint(packed, tmp_path):
    cfg = tiny(family="wae_uniform", replicates=2)
    trainer = train(PackTrainer(cfg, packed, TRAIN), 3)
    checkpoint.save(tmp_path, {"config": cfg.to_dict(), "trainer": trainer.state_dict()})
    model, loaded = checkpoint.load_pack(tmp_path)
    assert loaded == cfg
    assert torch.equal(model.dec_out_weight, trainer.model.dec_out_weight)
    mean, spread = model.encode(torch.zeros(5, 4096))
    assert mean.shape == spread.shape == (2, 5, 4)
    assert model.decode(mean).shape == (2, 5, 4096)

    path = tmp_path / checkpoint.FILE
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load_pack(tmp_path)


def test_lr_schedule_compresses_the_authors_boundaries():
    cfg = tiny(steps=6000)
    assert cfg.schedule() == [(0, 1e-3), (1500, 7e-4), (3000, 3e-4), (4500, 1e-4)]
    assert [cfg.lr_at(s) for s in (0, 1499, 1500, 4499, 5999)] == [1e-3, 1e-3, 7e-4, 3e-4, 1e-4]
    assert tiny(steps=60_000).schedule()[1] == (15_000, 7e-4)


def test_uniform_box_options(packed):
    mean, spread, u = torch.zeros(1, 1, 2), torch.log(torch.tensor([[[2.0, 4.0]]])), torch.ones(
        1, 1, 2)
    corner = PackTrainer(tiny(family="wae_uniform"), packed, TRAIN).model
    centred = PackTrainer(tiny(family="wae_uniform", uniform_box="centred"), packed, TRAIN).model
    assert corner.sample_posterior(mean, spread, u).tolist() == [[[2.0, 4.0]]]
    assert centred.sample_posterior(mean, spread, u).tolist() == [[[1.0, 2.0]]]
    assert corner.posterior_mean(mean, spread).tolist() == [[[1.0, 2.0]]]
    assert centred.posterior_mean(mean, spread).tolist() == [[[0.0, 0.0]]]


def spy_on_loss_terms(monkeypatch, spy_of) -> None:
    """Every `LOSS_TERMS` function replaced by `spy_of(name, real)`: where the pack imported
    it, and in `trainables.losses`, which a family's loss reads when it runs."""
    from trainables import losses
    from trainables import pack as pack_module

    for name in LOSS_TERMS:
        spy = spy_of(name, getattr(losses, name))
        for module in (losses, pack_module):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy)


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_runs_the_matmuls_only_the_losses_and_weights_stay_fp32(packed, family,
                                                                    monkeypatch):
    """precision = 'bf16': the loss terms (pixel sums, the MMD's kernel sums, KL, penalty,
    total correlation, DIP's covariance, FactorVAE's logits) see fp32 inputs, the returned
    losses are fp32, and the master weights and Adam moments stay fp32 after a step."""
    seen = {}

    def spy_of(name, real):
        def spy(*tensors, **kwargs):
            seen[name] = {t.dtype for t in tensors if isinstance(t, torch.Tensor)}
            return real(*tensors, **kwargs)
        return spy

    spy_on_loss_terms(monkeypatch, spy_of)
    trainer = PackTrainer(tiny(family=family, replicates=2, precision="bf16"), packed, TRAIN)
    batch = trainer.draw_batch()
    with trainer.autocast():
        loss, recon, discriminator = trainer.member_losses(batch)
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16  # autocast is on
    assert seen and all(dtypes == {torch.float32} for dtypes in seen.values()), seen
    assert loss.dtype == recon.dtype == torch.float32 and loss.shape == (2,)
    assert discriminator is None or (discriminator.dtype == torch.float32
                                     and discriminator.shape == (2,))
    trainer.train_step()
    assert {t.dtype for t in member_state(trainer, 0)} == {torch.float32}


class FloatDtypes(torch.overrides.TorchFunctionMode):
    """The dtypes of every floating tensor the torch calls inside return (autocast acts
    below this mode, so a matmul it runs in bf16 shows here as bf16)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.seen.add(t.dtype)
        return out


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_computes_every_loss_term_inside_in_fp32(packed, family, monkeypatch):
    """precision = 'bf16' (TrainConfig's help): not only the loss terms' inputs and results
    but every operation inside them (DIP-VAE's covariance matmul, the MMD's kernel sums, the
    total correlation's log-sum-exps, FactorVAE's discriminator loss) runs in fp32."""
    inside: dict[str, set[torch.dtype]] = {}

    def spy_of(name, real):
        def spy(*args, **kwargs):
            with FloatDtypes() as mode:
                out = real(*args, **kwargs)
            inside[name] = mode.seen
            return out
        return spy

    spy_on_loss_terms(monkeypatch, spy_of)
    trainer = PackTrainer(tiny(family=family, replicates=2, precision="bf16"), packed, TRAIN)
    with trainer.autocast():
        trainer.member_losses(trainer.draw_batch())
    assert inside and all(dtypes == {torch.float32} for dtypes in inside.values()), inside


def test_each_vae_familys_objective_is_disentanglement_libs(packed):
    """What each family adds to the reconstruction: β·KL; KL + (β − 1)·TC; KL + the DIP
    penalty with λ_d = 10·λ_od (I) or λ_od (II); γ·|KL − C| with C rising to c_max."""
    from trainables import losses

    gen = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(2, 8, 4, generator=gen), torch.randn(2, 8, 4, generator=gen)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(2, 8, 4, generator=gen)
    kl = losses.kl_standard_normal(mean, logvar)

    def regularizer(family, value, step=0, **overrides):
        trainer = PackTrainer(tiny(family=family, value=value, replicates=2, **overrides),
                              packed, TRAIN)
        trainer.step = step
        nothing = torch.zeros(2)  # the reconstruction: the total is then the rest alone
        return trainer.family.losses(trainer, Forward(None, mean, logvar, z, nothing)).total

    torch.testing.assert_close(regularizer("beta_vae", 4.0), 4.0 * kl)
    tc = losses.total_correlation(z, mean, logvar, len(TRAIN))
    torch.testing.assert_close(regularizer("beta_tcvae", 6.0), kl + 5.0 * tc)
    torch.testing.assert_close(regularizer("beta_tcvae", 1.0), kl)  # β = 1: the plain VAE
    two, twenty = torch.tensor([2.0, 2.0]), torch.tensor([20.0, 20.0])
    torch.testing.assert_close(regularizer("dip_vae_i", 2.0), kl + losses.dip_covariance_penalty(
        mean, logvar, two, twenty, "i"))
    torch.testing.assert_close(regularizer("dip_vae_ii", 2.0), kl + losses.dip_covariance_penalty(
        mean, logvar, two, two, "ii"))
    annealed = {"annealed_gamma": 100.0, "capacity_steps": 10}
    torch.testing.assert_close(regularizer("annealed_vae", 25.0, 0, **annealed), 100.0 * kl)
    torch.testing.assert_close(regularizer("annealed_vae", 25.0, 4, **annealed),
                               100.0 * (kl - 10.0).abs())
    assert tiny(family="annealed_vae", steps=90).annealing_steps == 30  # a third by default


def test_factor_vae_gradients_stay_with_their_own_loss(packed):
    """The VAE parameters step on the VAE loss alone and the discriminators on theirs alone,
    as disentanglement_lib's two optimisers over their own variables; each member's
    shuffled batch permutes every latent on its own draws."""
    cfg = tiny(family="factor_vae", value=20.0, replicates=2)
    stepped, fresh = PackTrainer(cfg, packed, TRAIN), PackTrainer(cfg, packed, TRAIN)
    stepped.train_step()  # the gradients of its one step stay in .grad
    batch = fresh.draw_batch()
    assert batch.order.shape == (2, 8, 4)
    assert torch.equal(batch.order.sort(1).values, torch.arange(8).view(1, 8, 1).expand(2, 8, 4))
    losses = fresh.member_losses(batch)
    vae = torch.autograd.grad(losses.total.sum(), fresh.params, retain_graph=True)
    disc = torch.autograd.grad(losses.discriminator.sum(), fresh.discriminator_params,
                               retain_graph=True)
    for got, want in zip([p.grad for p in stepped.params + stepped.discriminator_params],
                         vae + disc, strict=True):
        torch.testing.assert_close(got, want)
    # the separation matters: each loss reaches the other's parameters
    across = torch.autograd.grad(losses.total.sum(), fresh.discriminator_params[-2])[0]
    assert across.abs().sum() > 0
