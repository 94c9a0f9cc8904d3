"""What each family's training step costs beside the β-VAE's, at one pack size and shape.

The families differ only in their losses (the MMD's kernel sums, the total correlation's
B × B densities, DIP's covariance) and FactorVAE's discriminators (two passes of a
6-layer MLP over the codes and a second Adam), so their cost is a ratio to the β-VAE's step,
measured here side by side: every family's step is timed in turn, round after round, and
the median round kept (a noisy shared machine slows all of them alike).

    PYTHONPATH=. python benchmarks/families.py                 # the laptop presets' size
    PYTHONPATH=. python benchmarks/families.py --size paper --k 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from study.presets import LAPTOP_TRAIN, PAPER_TRAIN
from trainables.config import FAMILIES, TrainConfig
from trainables.pack import PackTrainer

SIZES = {"laptop": LAPTOP_TRAIN, "paper": PAPER_TRAIN}
SHAPE_KEYS = ("batch_size", "encoder_width", "decoder_width", "latent_dim",
              "discriminator_width")


def trainer(family: str, size: str, k: int) -> PackTrainer:
    shape = {key: SIZES[size][key] for key in SHAPE_KEYS if key in SIZES[size]}
    cfg = TrainConfig(family=family, value=1.0, replicates=k, **shape)
    # dSprites-like sparse images: ~4 % of the 4096 pixels lit, packed 8 per byte
    rng = np.random.default_rng(0)
    bits = rng.random((2000, 4096)) < 0.04
    return PackTrainer(cfg, np.packbits(bits, axis=1), np.arange(2000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="laptop")
    parser.add_argument("--k", type=int, default=3, help="models per pack (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="steps per family per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: a study's trial holds one CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trainers = {family: trainer(family, args.size, args.k) for family in FAMILIES}
    for t in trainers.values():  # warm up: allocations, first-call dispatch
        for _ in range(3):
            t.train_step()
    seconds = {family: [] for family in FAMILIES}
    for _ in range(args.rounds):
        for family, t in trainers.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                t.train_step()
            t.read_report()  # the one host sync
            seconds[family].append((time.perf_counter() - start) / args.steps)
    base = statistics.median(seconds["beta_vae"])
    print(f"size={args.size} K={args.k} threads={args.threads} "
          f"(median of {args.rounds} rounds × {args.steps} steps)")
    print(f"{'family':14s} {'ms/step':>8s} {'model-steps/s':>14s} {'× beta_vae':>10s}")
    for family, times in seconds.items():
        step = statistics.median(times)
        print(f"{family:14s} {1000 * step:8.1f} {args.k / step:14.1f} {step / base:10.2f}")


if __name__ == "__main__":
    main()
