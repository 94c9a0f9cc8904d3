"""Time the metric suite for one paper-size model; prints one JSON line per measurement.

    .venv/bin/python benchmarks/metrics.py [--data PATH] [--metrics ...] [--encoder MODE]

The model is the paper's encoder (4096 -> 1200 ReLU -> 1200 ReLU -> 16, last layer rescaled
so codes have unit spread, as a trained model's) and a 16 -> 1200 -> 1200 -> 1200 -> 4096
decoder, random weights otherwise (the cost does not depend on them). Without --data, a
stand-in of the dataset with random packed bits (6 % of pixels on, as dSprites) is used: the
same bit-unpacking and matmul costs, no file needed.

Lines: "encode_rate" (images/s on 8,192 images, float32 and bf16 autocast), "prepare"
(sampling + dedup: draws vs unique images), "encode" (all unique images, --encoder mode), one
"score" line per metric, "reconstruction" (10,000 test images), "total".
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import numpy as np
import torch

from analysis.metrics import encode_indices, prepare, reconstruction
from analysis.metrics.suite import METRICS

SIZES = (1, 3, 6, 40, 32, 32)
NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")


class StandIn:
    """The metrics' data interface over random packed bits (real layout and unpacking)."""

    factor_names = NAMES
    factor_sizes = SIZES

    def __init__(self, seed: int = 0) -> None:
        n = int(np.prod(SIZES))
        rng = np.random.default_rng(seed)
        self.packed = rng.integers(0, 256, size=(n, 512), dtype=np.uint8)
        for _ in range(3):  # each bit on with probability 1/16
            self.packed &= rng.integers(0, 256, size=(n, 512), dtype=np.uint8)
        self.bases = np.array([int(np.prod(SIZES[i + 1 :])) for i in range(len(SIZES))])

    def sample_classes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(s, size=n) for s in SIZES], axis=1)

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        return np.asarray(classes, dtype=np.int64) @ self.bases

    def images(self, indices: np.ndarray) -> np.ndarray:
        return np.unpackbits(self.packed[indices], axis=-1).reshape(-1, 64, 64)

    def images_for(self, classes: np.ndarray) -> np.ndarray:
        return self.images(self.index_of(classes))


def mlp(sizes: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a dSprites file for trainables.data.load")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--classifier-steps", type=int, default=100_000)
    parser.add_argument("--encoder", choices=["float32", "bf16"], default="float32",
                        help="encoder precision for the suite (bf16: CPU autocast)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=4096, help="images per forward pass")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def emit(**fields) -> None:
        print(json.dumps(fields), flush=True)

    start = time.perf_counter()
    if args.data:
        from trainables.data import load

        data = load(args.data)
    else:
        data = StandIn()
    emit(step="data", seconds=round(time.perf_counter() - start, 2),
         source=args.data or "stand-in", threads=args.threads)

    encoder, decoder = mlp([4096, 1200, 1200, 16]), mlp([16, 1200, 1200, 1200, 4096])

    @torch.inference_mode()
    def run(net: torch.nn.Module, images: np.ndarray, mode: str = "float32") -> np.ndarray:
        outs = []
        for i in range(0, len(images), args.batch):
            batch = images[i : i + args.batch]
            pixels = torch.from_numpy(batch.reshape(len(batch), -1)).float()
            with torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else nullcontext():
                outs.append(net(pixels).float())
        return torch.cat(outs).numpy()

    with torch.inference_mode():  # unit code spread, so FactorVAE keeps its dims
        spread = run(encoder, data.images(np.arange(0, 737_280, 360))).std(axis=0)
        encoder[-1].weight /= torch.from_numpy(spread)[:, None]
        encoder[-1].bias /= torch.from_numpy(spread)

    sample = data.images(np.arange(8192) * 90)
    for mode in ("float32", "bf16"):
        t = time.perf_counter()
        run(encoder, sample, mode)
        emit(step="encode_rate", mode=mode, images_per_s=round(8192 / (time.perf_counter() - t)))

    def encode(images: np.ndarray) -> np.ndarray:
        return run(encoder, images, args.encoder)

    def logits(images: np.ndarray) -> np.ndarray:
        return run(torch.nn.Sequential(*encoder, *decoder), images, args.encoder)

    total = time.perf_counter()
    options = {name: {"classifier_steps": args.classifier_steps}
               for name in args.metrics if name.startswith("higgins")}
    t = time.perf_counter()
    evaluation = prepare(data, args.metrics, seed=0, options=options)
    emit(step="prepare", seconds=round(time.perf_counter() - t, 2),
         draws=evaluation.index_set.n_draws, unique_images=len(evaluation.indices))

    t = time.perf_counter()
    codes = encode_indices(encode, data, evaluation.indices)
    seconds = time.perf_counter() - t
    emit(step="encode", seconds=round(seconds, 2), images=len(evaluation.indices),
         images_per_s=round(len(evaluation.indices) / seconds), encoder=args.encoder)

    table = evaluation.index_set.table(codes)
    for name, plan in evaluation.plans.items():
        t = time.perf_counter()
        result = plan.score(table)[0]
        emit(step="score", metric=name, seconds=round(time.perf_counter() - t, 2),
             score=round(result["score"], 4))

    t = time.perf_counter()
    test = np.arange(0, int(np.prod(SIZES)), 10)
    result = reconstruction(logits, data, indices=test, n=10_000)
    emit(step="reconstruction", seconds=round(time.perf_counter() - t, 2),
         score=round(result["score"], 1))
    emit(step="total", seconds=round(time.perf_counter() - total, 2))


if __name__ == "__main__":
    main()
