"""Training a pack: K members of one family trained side by side, one step at a time.

The step, top to bottom (`PackTrainer.train_step`):
  1. each member draws its own batch indices and noise from its own generator,
  2. the rows are gathered from the device copy of the packed dataset and unpacked there,
  3. one batched forward pass gives every member's loss, shape [K],
  4. backward on their sum: d(sum)/d(member k) is member k's gradient alone,
  5. a member whose loss is not finite is frozen for good and its step recorded,
  6. Adam, one fused call per member: the kernel's `found_inf` flag makes it skip a frozen
     member entirely (parameters and moments untouched), with no host synchronisation.
Because Adam is elementwise, this is exactly K independent Adams; a member trained in a pack
follows the same trajectory as the same member (same seed) trained alone.
Losses stay on the device and are read back only at report time (`read_report`).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
from torch.optim.adam import adam  # the functional Adam (torch.optim.adam.__all__)

from trainables.config import DIP_DIAGONAL, WAE_FAMILIES, TrainConfig
from trainables.data import unpack_rows
from trainables.losses import (
    annealed_capacity,
    bernoulli_reconstruction,
    dip_covariance_penalty,
    imq_scales,
    kl_standard_normal,
    mmd_imq,
    spread_penalty,
    total_correlation,
)
from trainables.models import PIXELS, TRAIN_STREAM, PackModel, member_stream_seed

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


class PackTrainer:
    """The model, its Adam state, the per-member random streams and health, and the step."""

    def __init__(
        self,
        cfg: TrainConfig,
        packed: np.ndarray | torch.Tensor,
        train_indices: np.ndarray | torch.Tensor,
        device: torch.device | str = "cpu",
    ) -> None:
        if cfg.precision == "auto":
            raise ValueError("PackTrainer needs a concrete precision: resolve 'auto' with "
                             "trainables.precision.choose_precision first")
        self.cfg = cfg
        self.device = torch.device(device)
        k = cfg.replicates
        self.model = PackModel.from_config(cfg, self.device)
        self.params = list(self.model.parameters())
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # Adam's step count per member and parameter (the fused kernel wants one tensor per
        # parameter); a frozen member's stops.
        self.adam_steps = torch.zeros(k, len(self.params), dtype=torch.float32,
                                      device=self.device)
        # Per-member views of the stacked tensors, for the per-member fused Adam calls.
        self._member_params = _by_member([p.detach() for p in self.params])
        self._member_avg = _by_member(self.exp_avg)
        self._member_avg_sq = _by_member(self.exp_avg_sq)
        self._member_steps = [list(row.unbind(0)) for row in self.adam_steps]

        self.step = 0
        self.frozen = torch.zeros(k, dtype=torch.bool, device=self.device)
        self.diverged_at = torch.full((k,), -1, dtype=torch.int64, device=self.device)
        self.value = torch.full((k,), cfg.value, device=self.device)  # β or λ1, per member
        self.scales = imq_scales(cfg.mmd_estimator, cfg.latent_dim, self.device)
        self.generators = [
            torch.Generator(self.device).manual_seed(member_stream_seed(s, TRAIN_STREAM))
            for s in cfg.member_seeds
        ]
        self.packed = as_tensor(packed).to(self.device)
        self.train_indices = torch.as_tensor(train_indices, dtype=torch.int64).to(self.device)
        self.dataset_size = len(self.train_indices)  # N of β-TCVAE's total correlation estimate
        # Sums since the last report, on the device: loss, recon and healthy steps per member.
        self.window = torch.zeros(3, k, dtype=torch.float64, device=self.device)

        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high" if cfg.precision == "tf32" else "highest")

    # ---- the step ---------------------------------------------------------------------
    def train_step(self) -> None:
        """One optimiser step of every healthy member; never waits for the device."""
        x, noise, prior = self.draw_batch()
        with self.autocast():
            loss, recon = self.member_losses(x, noise, prior)
        for p in self.params:
            p.grad = None
        loss.sum().backward()

        bad = ~torch.isfinite(loss)
        self.diverged_at = torch.where(bad & ~self.frozen, self.step, self.diverged_at)
        self.frozen |= bad
        self.adam(self.cfg.lr_at(self.step))

        healthy = ~self.frozen
        self.window += torch.stack([
            torch.where(healthy, loss.detach(), 0.0).double(),
            torch.where(healthy, recon.detach(), 0.0).double(),
            healthy.double(),
        ])
        self.step += 1

    def draw_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Each member's images (K, B, 4096), posterior noise (K, B, d) and prior samples
        (K, B, d; None for the β-VAE), every member from its own generator."""
        cfg, d, b = self.cfg, self.cfg.latent_dim, self.cfg.batch_size
        wae = cfg.family in WAE_FAMILIES
        width = 2 * d if wae else d
        picks, noises = [], []
        for gen in self.generators:
            picks.append(torch.randint(len(self.train_indices), (b,), generator=gen,
                                       device=self.device))
            noises.append(self.model.noise(b, width, generator=gen, device=self.device))
        rows = self.packed[self.train_indices[torch.stack(picks)]]  # (K, B, 512) uint8
        x = unpack_rows(rows.view(-1, rows.shape[-1])).view(len(picks), b, PIXELS)
        noise = torch.stack(noises)
        if not wae:
            return x, noise, None
        prior = noise[..., d:]
        if cfg.family == "wae_uniform":
            prior = 2.0 * prior - 1.0  # U(0,1) -> U(-1,1)
        return x, noise[..., :d], prior

    def member_losses(
        self, x: torch.Tensor, noise: torch.Tensor, prior: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, reconstruction), each [K]."""
        cfg, model = self.cfg, self.model
        mean, spread = model.encode(x)
        z = model.sample_posterior(mean, spread, noise)
        recon = bernoulli_reconstruction(model.decode(z), x)
        if cfg.family in WAE_FAMILIES:
            mmd = mmd_imq(z, prior, self.scales, cfg.mmd_estimator)
            penalty = spread_penalty(spread, cfg.penalty_p)
            return recon + cfg.lambda_mmd * mmd + self.value * penalty, recon
        return recon + self.vae_regularizer(z, mean, spread), recon

    def vae_regularizer(self, z: torch.Tensor, mean: torch.Tensor,
                        logvar: torch.Tensor) -> torch.Tensor:
        """What a VAE family adds to the reconstruction, as disentanglement_lib's study
        (`value` is the family's `param`), each [K]."""
        cfg, value = self.cfg, self.value
        kl = kl_standard_normal(mean, logvar)
        if cfg.family == "beta_vae":
            return value * kl
        if cfg.family == "beta_tcvae":
            return kl + (value - 1.0) * total_correlation(z, mean, logvar, self.dataset_size)
        if cfg.family in DIP_DIAGONAL:
            return kl + dip_covariance_penalty(mean, logvar, value, DIP_DIAGONAL[cfg.family] *
                                               value, cfg.family.removeprefix("dip_vae_"))
        if cfg.family == "annealed_vae":
            capacity = annealed_capacity(value, self.step, cfg.annealing_steps)
            return cfg.annealed_gamma * (kl - capacity).abs()
        raise ValueError(f"no loss for family {cfg.family!r}")

    @torch.no_grad()
    def adam(self, lr: float) -> None:
        """Adam per member, torch's fused kernel through its functional API: one Adam over
        the stacked parameters is exactly one Adam per model (Adam is elementwise), and one
        call per member lets `found_inf` = frozen skip a diverged member without waiting for
        the device."""
        grads = _by_member([p.grad for p in self.params])
        skip = self.frozen.float()
        for k, member_grads in enumerate(grads):
            adam(
                self._member_params[k], member_grads, self._member_avg[k],
                self._member_avg_sq[k], [], self._member_steps[k], fused=True,
                found_inf=skip[k], amsgrad=False, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                lr=lr, weight_decay=0.0, eps=ADAM_EPS, maximize=False)

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
        evaluation: it cannot continue training)."""
        state = {
            "step": self.step,
            "model": {n: t.detach().cpu() for n, t in self.model.state_dict().items()},
            "frozen": self.frozen.cpu(),
            "diverged_at": self.diverged_at.cpu(),
        }
        if weights_only:
            return state
        return {
            **state,
            "exp_avg": [t.cpu() for t in self.exp_avg],
            "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
            "adam_step": self.adam_steps.amax().cpu(),  # a healthy member's: they agree
            "generators": [g.get_state() for g in self.generators],
            "window": self.window.cpu(),
        }

    @staticmethod
    def can_continue(state: dict) -> bool:
        """Whether a state holds what training on needs (not a weights-only final one)."""
        return "exp_avg" in state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore in place (the cached member views stay valid). A weights-only state
        restores the parameters and member health only."""
        self.step = int(state["step"])
        for name, param in self.model.named_parameters():
            param.copy_(state["model"][name])
        self.frozen.copy_(state["frozen"])
        self.diverged_at.copy_(state["diverged_at"])
        if not self.can_continue(state):
            return
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq,
                               state["exp_avg"] + state["exp_avg_sq"], strict=True):
            mine.copy_(saved)
        self.adam_steps.copy_(state["adam_step"])  # every member's, every parameter's
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


def _by_member(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """[K, ...] tensors -> per member, the list of its [...] views."""
    return [list(views) for views in zip(*(t.unbind(0) for t in tensors), strict=True)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
