"""Training a pack: K members of one family trained side by side, one step at a time.

The step, top to bottom (`PackTrainer.train_step`):
  1. each member draws its own batch indices and noise from its own generator,
  2. the rows are gathered from the device copy of the stored dataset (dSprites' packed bits,
     another dataset's uint8 pixels), turned into pixels there and shown as the dataset shows
     them (`Dataset.observe`: a colour, a noisy background),
  3. one batched forward pass gives every member's loss, shape [K],
  4. backward on their sum: d(sum)/d(member k) is member k's gradient alone,
  5. a member whose loss is not finite is frozen for good and its step recorded,
  6. Adam, one fused call per member: the kernel's `found_inf` flag makes it skip a frozen
     member entirely (parameters and moments untouched), with no host synchronisation.
A FactorVAE pack also trains K discriminators on the same forward pass: the VAE loss's
gradient goes to the VAE parameters only and the discriminator loss's to the discriminators
only (`backward(inputs=...)`), each set with its own Adam, as disentanglement_lib's two
optimisers over their own variables.
Because Adam is elementwise, this is exactly K independent Adams; a member trained in a pack
follows the same trajectory as the same member (same seed) trained alone.
Losses stay on the device and are read back only at report time (`read_report`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch.optim.adam import adam  # the functional Adam (torch.optim.adam.__all__)

from trainables.config import DISCRIMINATOR_BETAS, TrainConfig
from trainables.datasets import DATASETS, Dataset
from trainables.families import FAMILIES, Forward, Losses
from trainables.losses import bernoulli_reconstruction, imq_scales
from trainables.models import (
    TRAIN_STREAM,
    PackDiscriminator,
    build_model,
    member_stream_seed,
)

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Wrap a (possibly read-only, e.g. Ray object store) array without copying.
    Nothing here ever writes to it, so torch's non-writable warning is moot."""
    if isinstance(array, torch.Tensor):
        return array
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class Batch(NamedTuple):
    """One step's draws, every member from its own generator, each with a leading K axis."""

    x: torch.Tensor  # images (K, B, pixels)
    noise: torch.Tensor  # posterior noise (K, B, d)
    prior: torch.Tensor | None  # prior samples (K, B, d): the WAEs'
    order: torch.Tensor | None  # each latent's batch permutation (K, B, d): FactorVAE's


class MemberAdam:
    """Adam over stacked [K, ...] parameters, torch's fused kernel through its functional API,
    one call per member: one Adam over the stacked tensors is exactly one Adam per model (Adam
    is elementwise), and per member `found_inf` = frozen skips a diverged member (parameters,
    moments and step count untouched) without waiting for the device."""

    def __init__(self, params: list[torch.Tensor], betas: tuple[float, float] = ADAM_BETAS,
                 eps: float = ADAM_EPS) -> None:
        self.params, self.betas, self.eps = params, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        k = params[0].shape[0]
        # step count per member and parameter (the fused kernel wants one tensor each)
        self.steps = torch.zeros(k, len(params), dtype=torch.float32, device=params[0].device)
        self._params = _by_member([p.detach() for p in params])
        self._avg = _by_member(self.exp_avg)
        self._avg_sq = _by_member(self.exp_avg_sq)
        self._steps = [list(row.unbind(0)) for row in self.steps]

    @torch.no_grad()
    def step(self, lr: float, skip: torch.Tensor) -> None:
        """One update of every member whose `skip` [K] is 0."""
        grads = _by_member([p.grad for p in self.params])
        for k, member_grads in enumerate(grads):
            adam(self._params[k], member_grads, self._avg[k], self._avg_sq[k], [],
                 self._steps[k], fused=True, found_inf=skip[k], amsgrad=False,
                 beta1=self.betas[0], beta2=self.betas[1], lr=lr, weight_decay=0.0,
                 eps=self.eps, maximize=False)

    def state_dict(self) -> dict:
        return {"exp_avg": [t.cpu() for t in self.exp_avg],
                "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
                "adam_step": self.steps.amax().cpu()}  # a healthy member's: they agree

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """In place, so the per-member views stay valid."""
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq,
                               state["exp_avg"] + state["exp_avg_sq"], strict=True):
            mine.copy_(saved)
        self.steps.copy_(state["adam_step"])  # every member's, every parameter's


class PackTrainer:
    """The model (and FactorVAE's discriminators), their Adam states, the per-member random
    streams and health, and the step."""

    def __init__(
        self,
        cfg: TrainConfig,
        stored: np.ndarray | torch.Tensor,
        train_indices: np.ndarray | torch.Tensor,
        device: torch.device | str = "cpu",
        dataset: Dataset | None = None,
    ) -> None:
        """`dataset`: how the images are shown, the loaded data's own (`GroundTruthImages.
        dataset`, which carries scream_dsprites' painting); default the registry's for
        `cfg.dataset`."""
        if cfg.precision == "auto":
            raise ValueError("PackTrainer needs a concrete precision: resolve 'auto' with "
                             "trainables.precision.choose_precision first")
        self.cfg = cfg
        self.family = FAMILIES[cfg.family]
        self.device = torch.device(device)
        self.dataset = (dataset or DATASETS[cfg.dataset]).to(self.device)
        if self.dataset.name != cfg.dataset:
            raise ValueError(f"the data shows {self.dataset.name}, the config trains on "
                             f"{cfg.dataset}")
        k = cfg.replicates
        self.model = build_model(cfg, self.device)
        self.params = list(self.model.parameters())
        self.optimizer = MemberAdam(self.params)
        self.discriminator = (PackDiscriminator.from_config(cfg, self.device)
                              if self.family.discriminator else None)
        self.discriminator_params = (list(self.discriminator.parameters())
                                     if self.discriminator else [])
        self.discriminator_optimizer = (MemberAdam(self.discriminator_params,
                                                   DISCRIMINATOR_BETAS)
                                        if self.discriminator else None)

        self.step = 0
        self.frozen = torch.zeros(k, dtype=torch.bool, device=self.device)
        self.diverged_at = torch.full((k,), -1, dtype=torch.int64, device=self.device)
        self.value = torch.full((k,), cfg.value, device=self.device)  # the family's param
        self.scales = imq_scales(cfg.mmd_estimator, cfg.latent_dim, self.device)
        self.generators = [
            torch.Generator(self.device).manual_seed(member_stream_seed(s, TRAIN_STREAM))
            for s in cfg.member_seeds
        ]
        self.stored = as_tensor(stored).to(self.device)
        self.train_indices = torch.as_tensor(train_indices, dtype=torch.int64).to(self.device)
        self.dataset_size = len(self.train_indices)  # N of β-TCVAE's total correlation estimate
        # Sums since the last report, on the device: loss, recon and healthy steps per member.
        self.window = torch.zeros(3, k, dtype=torch.float64, device=self.device)

        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high" if cfg.precision == "tf32" else "highest")

    # ---- the step ---------------------------------------------------------------------
    def train_step(self) -> None:
        """One optimiser step of every healthy member; never waits for the device."""
        batch = self.draw_batch()
        with self.autocast():
            losses = self.member_losses(batch)
        loss = losses.total
        for p in self.params + self.discriminator_params:
            p.grad = None
        bad = ~torch.isfinite(loss)
        if losses.discriminator is None:
            loss.sum().backward()
        else:
            loss.sum().backward(inputs=self.params, retain_graph=True)
            losses.discriminator.sum().backward(inputs=self.discriminator_params)
            bad |= ~torch.isfinite(losses.discriminator)

        self.diverged_at = torch.where(bad & ~self.frozen, self.step, self.diverged_at)
        self.frozen |= bad
        skip = self.frozen.float()
        self.optimizer.step(self.cfg.lr_at(self.step), skip)
        if self.discriminator_optimizer is not None:
            self.discriminator_optimizer.step(self.cfg.discriminator_lr, skip)

        healthy = ~self.frozen
        self.window += torch.stack([
            torch.where(healthy, loss.detach(), 0.0).double(),
            torch.where(healthy, losses.recon.detach(), 0.0).double(),
            healthy.double(),
        ])
        self.step += 1

    def draw_batch(self) -> Batch:
        """Each member's images, posterior noise, prior samples (the WAEs') and latent
        permutations (FactorVAE's), every member from its own generator; a dataset's colour
        or noise (`Dataset.observe`) comes last from it (dSprites draws none)."""
        family, d, b = self.family, self.cfg.latent_dim, self.cfg.batch_size
        width = 2 * d if family.wae else d
        picks, noises, orders = [], [], []
        for gen in self.generators:
            picks.append(torch.randint(len(self.train_indices), (b,), generator=gen,
                                       device=self.device))
            noises.append(self.model.noise(b, width, generator=gen, device=self.device))
            if self.discriminator is not None:  # each column's own permutation of the batch
                orders.append(torch.rand(b, d, generator=gen, device=self.device).argsort(0))
        rows = self.stored[self.train_indices[torch.stack(picks)]]  # (K, B, ...) as stored
        x = torch.stack([self.observe(member_rows, gen)
                         for member_rows, gen in zip(rows, self.generators, strict=True)])
        noise = torch.stack(noises)
        order = torch.stack(orders) if orders else None
        if not family.wae:
            return Batch(x, noise, None, order)
        prior = noise[..., d:]
        if family.uniform:
            prior = 2.0 * prior - 1.0  # U(0,1) -> U(-1,1)
        return Batch(x, noise[..., :d], prior, order)

    def observe(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One member's stored rows as its model sees them (`Dataset.observe`), pixels
        (B, H*W*C), a colour or noise drawn from the member's own generator."""
        return self.dataset.observe(self.dataset.stored_pixels(rows), lambda count: torch.rand(
            len(rows), count, generator=generator, device=self.device))

    def member_losses(self, batch: Batch) -> Losses:
        """Every member's losses from one forward pass, each [K]: the reconstruction here,
        the rest as the family writes it (`Family.losses`)."""
        model = self.model
        mean, spread = model.encode(batch.x)
        z = model.sample_posterior(mean, spread, batch.noise)
        recon = bernoulli_reconstruction(model.decode(z), batch.x)
        return self.family.losses(self, Forward(batch, mean, spread, z, recon))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the matmuls (fp32 master weights), else nothing."""
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---- reporting --------------------------------------------------------------------
    def read_report(self) -> dict:
        """Window means since the last call (the one host sync) and member health."""
        loss_sum, recon_sum, count = self.window.tolist()
        diverged_at = self.diverged_at.tolist()
        self.window.zero_()
        member_loss = [s / n if n else math.nan for s, n in zip(loss_sum, count, strict=True)]
        member_recon = [s / n if n else math.nan for s, n in zip(recon_sum, count, strict=True)]
        healthy = [k for k, at in enumerate(diverged_at) if at < 0]
        return {
            "step": self.step,
            "loss": _mean([member_loss[k] for k in healthy]),
            "recon": _mean([member_recon[k] for k in healthy]),
            "member_loss": member_loss,
            "diverged_at": diverged_at,
            "n_diverged": len(diverged_at) - len(healthy),
        }

    # ---- checkpoint state -------------------------------------------------------------
    def state_dict(self, weights_only: bool = False) -> dict:
        """Everything the trajectory depends on, as CPU tensors and primitives only; with
        `weights_only` the parameters and member health alone (a finished pack, for
        evaluation: it cannot continue training, so FactorVAE's discriminators are left out)."""
        state = {
            "step": self.step,
            "model": _cpu_weights(self.model),
            "frozen": self.frozen.cpu(),
            "diverged_at": self.diverged_at.cpu(),
        }
        if weights_only:
            return state
        state = {
            **state,
            **self.optimizer.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "window": self.window.cpu(),
        }
        if self.discriminator is not None:
            state["discriminator"] = {"model": _cpu_weights(self.discriminator),
                                      **self.discriminator_optimizer.state_dict()}
        return state

    @staticmethod
    def can_continue(state: dict) -> bool:
        """Whether a state holds what training on needs (not a weights-only final one)."""
        return "exp_avg" in state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore in place (the cached member views stay valid). A weights-only state
        restores the parameters and member health only."""
        self.step = int(state["step"])
        _load_weights(self.model, state["model"])
        self.frozen.copy_(state["frozen"])
        self.diverged_at.copy_(state["diverged_at"])
        if not self.can_continue(state):
            return
        self.optimizer.load_state_dict(state)
        if self.discriminator is not None:
            _load_weights(self.discriminator, state["discriminator"]["model"])
            self.discriminator_optimizer.load_state_dict(state["discriminator"])
        self.window.copy_(state["window"])
        moved = False
        for gen, saved in zip(self.generators, state["generators"], strict=True):
            try:
                gen.set_state(saved)
            except RuntimeError:  # saved on another device type: its stream cannot continue
                moved = True
        if moved:
            self.restart_streams()
            warnings.warn("the checkpoint's batch streams come from another device type; they "
                          f"restart from seeds derived from step {self.step}: training goes "
                          "on, but not bitwise as it would have on the original device",
                          stacklevel=2)

    def restart_streams(self) -> None:
        """Each member's batch and noise stream restarted from its own seed and the step (a
        checkpoint from another device type, or another trial's after a PBT clone)."""
        for gen, seed in zip(self.generators, self.cfg.member_seeds, strict=True):
            gen.manual_seed(member_stream_seed(seed, TRAIN_STREAM, self.step))


def _cpu_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().cpu() for n, t in module.state_dict().items()}


def _load_weights(module: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    for name, param in module.named_parameters():
        param.copy_(saved[name])


def _by_member(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """[K, ...] tensors -> per member, the list of its [...] views."""
    return [list(views) for views in zip(*(t.unbind(0) for t in tensors), strict=True)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
