"""Every family's losses on a tiny pack, recorded bitwise: the fixture `family_losses.json`
pins the numbers the family code gave when it was written, so moving that code (one module
per family, `trainables.families`) is checked to change no bit of any loss.

    nice -n 10 .venv/bin/python -m tests.trainables.family_losses

rewrites the fixture; run it only when a family's numbers are meant to change.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from trainables.config import TrainConfig
from trainables.pack import PackTrainer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "family_losses.json"
STEPS = 6  # optimiser steps before the last batch: annealed_vae's capacity has risen
SEEDS = [3, 8, 13, 21]  # four members: enough sums that a reordered one shows in some bit
# (family, extra settings): every family once, the uniform WAE with each box
CASES: tuple[tuple[str, dict], ...] = (
    ("beta_vae", {}), ("wae_gaussian", {}), ("wae_uniform", {}),
    ("wae_uniform", {"uniform_box": "centred"}), ("beta_tcvae", {}), ("dip_vae_i", {}),
    ("dip_vae_ii", {}), ("annealed_vae", {}), ("factor_vae", {}),
)


def cpu() -> str:
    """The CPU's model and torch's kernel choice for it: what the recorded bits depend on."""
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text(
        errors="replace").splitlines() if line.startswith("model name")] \
        if Path("/proc/cpuinfo").is_file() else []
    return f"{models[0] if models else platform.processor()}, " \
        f"{torch.backends.cpu.get_cpu_capability()}"


def case_name(family: str, extra: dict) -> str:
    return ",".join([family, *(f"{k}={v}" for k, v in sorted(extra.items()))])


def hexes(tensor: torch.Tensor) -> list[str]:
    """Each element as float.hex: exact, and readable in a diff."""
    return [float(v).hex() for v in tensor.detach().double().flatten().tolist()]


def record(family: str, extra: dict) -> dict[str, list[str]]:
    """A 4-member pack's per-step training losses, then one batch's total, reconstruction
    and discriminator losses and the metrics' codes (uniform_code='centre'), on one thread:
    the reductions' order, hence every bit, is then fixed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _record(family, extra)
    finally:
        torch.set_num_threads(threads)


def _record(family: str, extra: dict) -> dict[str, list[str]]:
    packed = np.random.default_rng(0).integers(0, 256, (600, 512), dtype=np.uint8)
    cfg = TrainConfig(family=family, value=2.0, replicates=len(SEEDS), seeds=SEEDS, steps=40,
                      batch_size=8, latent_dim=4, encoder_width=32, decoder_width=32,
                      discriminator_width=16, discriminator_layers=2, **extra)
    trainer = PackTrainer(cfg, packed, np.arange(0, 600, 2))
    out: dict[str, list[str]] = {"step_loss": [], "step_recon": []}
    for _ in range(STEPS):
        trainer.train_step()
        report = trainer.read_report()
        out["step_loss"] += [float(v).hex() for v in report["member_loss"]]
        out["step_recon"].append(float(report["recon"]).hex())
    batch = trainer.draw_batch()
    with torch.no_grad():
        losses = trainer.member_losses(batch)
        mean, spread = trainer.model.encode(batch.x)
        code = trainer.model.code(mean, spread, "centre")
    out["total"], out["recon"] = hexes(losses.total), hexes(losses.recon)
    out["discriminator"] = [] if losses.discriminator is None else hexes(losses.discriminator)
    out["code"] = hexes(code)
    return out


if __name__ == "__main__":
    cases = {case_name(family, extra): record(family, extra) for family, extra in CASES}
    FIXTURE.write_text(json.dumps({"torch": torch.__version__,
                                   "cpu": cpu(),
                                   "cases": cases}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
