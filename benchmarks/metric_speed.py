"""Time the metric suite for one paper-size model; prints one JSON line per measurement.

    .venv/bin/python benchmarks/metric_speed.py [--data PATH] [--metrics ...] [--device cpu|cuda]
        [--per-metric]

The model is the project's own (`PackModel`, one member, paper size: 4096 -> 1200 ReLU -> 1200
ReLU -> 16 and 16 -> 1200 -> 1200 -> 1200 -> 4096), encoding the way a trial's evaluation
does (`trainables.evaluate.pack_encoder`), with the mean head rescaled so codes have unit
spread, as a trained model's (FactorVAE then keeps its dims); random weights otherwise (the
cost does not depend on them). Without --data, a stand-in of the dataset with random packed
bits (6 % of pixels on; dSprites has 4.2 %) is used: the same unpacking and layer costs.

Lines: "encode_rate" (images/s on 8,192 images: `pack`, the project's encoder, and `dense`,
the same weights through plain nn.Linear layers, side by side), "prepare" (sampling + dedup:
draws vs unique images), "encode" (all unique images), "score" (all metrics side by side, as a
trial scores them; with --per-metric also each metric alone on one thread),
"reconstruction" (10,000 test images), "total" (prepare + encode + score + reconstruction).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from metrics import encode_indices, prepare, reconstruction
from metrics.suite import metric_names
from trainables.data import PACKED_BYTES, DSprites, load
from trainables.datasets import DSPRITES
from trainables.evaluate import logits_fn, pack_encoder
from trainables.factors import N_IMAGES
from trainables.models import PackModel


def stand_in(seed: int = 0) -> DSprites:
    """The dataset with random packed bits (each on with probability 1/16) in place of images."""
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, size=(N_IMAGES, PACKED_BYTES), dtype=np.uint8)
    for _ in range(3):
        packed &= rng.integers(0, 256, size=packed.shape, dtype=np.uint8)
    return DSprites(packed, source="stand-in")


def dense_encoder(model: PackModel) -> torch.nn.Sequential:
    """The same encoder weights as plain nn.Linear layers: the obvious dense forward pass."""
    layers: list[torch.nn.Module] = []
    for name in ("enc1", "enc2", "enc_head"):
        weight = getattr(model, f"{name}_weight")[0]
        linear = torch.nn.Linear(*weight.shape)
        linear.weight.data, linear.bias.data = weight.t(), getattr(model, f"{name}_bias")[0, 0]
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a dSprites file for trainables.data.load")
    names = metric_names(DSPRITES)  # the stand-in and the files are dSprites'
    parser.add_argument("--metrics", nargs="+", default=names, choices=names)
    parser.add_argument("--classifier-steps", type=int, default=100_000)
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the model encodes and the Higgins classifiers train")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--per-metric", action="store_true",
                        help="also time each metric alone (single-threaded, one after another)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def emit(**fields) -> None:
        print(json.dumps(fields), flush=True)

    start = time.perf_counter()
    data = load(args.data) if args.data else stand_in()
    emit(step="data", seconds=round(time.perf_counter() - start, 2),
         source=args.data or "stand-in", threads=args.threads, device=args.device)

    model = PackModel("beta_vae", [0], device=args.device)
    encode = pack_encoder(model, [0])
    with torch.no_grad():  # unit code spread, so FactorVAE keeps its dims
        d = model.latent_dim
        codes = encode(data.images(np.arange(0, 737_280, 360)))[0]
        spread = torch.from_numpy(codes.std(0)).to(args.device)
        model.enc_head_weight[0, :, :d] /= spread
        model.enc_head_bias[0, 0, :d] /= spread

    sample = data.images(np.arange(8192) * 90)
    dense = dense_encoder(model)
    for impl, run in (("pack", encode), ("dense", lambda images: dense(torch.from_numpy(
            images.reshape(len(images), -1)).to(args.device).float()).cpu())):
        with torch.inference_mode():
            t = time.perf_counter()
            run(sample)
            emit(step="encode_rate", impl=impl,
                 images_per_s=round(len(sample) / (time.perf_counter() - t)))

    total = time.perf_counter()
    options = {name: {"classifier_steps": args.classifier_steps, "device": args.device}
               for name in args.metrics if name.startswith("higgins")}
    t = time.perf_counter()
    evaluation = prepare(data, args.metrics, seed=0, options=options)
    emit(step="prepare", seconds=round(time.perf_counter() - t, 2),
         draws=evaluation.index_set.n_draws, unique_images=len(evaluation.indices))

    t = time.perf_counter()
    codes = encode_indices(encode, data, evaluation.indices)
    seconds = time.perf_counter() - t
    emit(step="encode", seconds=round(seconds, 2), images=len(evaluation.indices),
         images_per_s=round(len(evaluation.indices) / seconds))

    t = time.perf_counter()
    results = evaluation.score(codes)[0]
    emit(step="score", metrics="side by side", seconds=round(time.perf_counter() - t, 2),
         scores={name: round(r["score"], 4) for name, r in results.items()})

    t = time.perf_counter()
    test = np.arange(0, data.n, 10)
    result = reconstruction(logits_fn(model.member(0)), data, indices=test, n=10_000)
    emit(step="reconstruction", seconds=round(time.perf_counter() - t, 2),
         score=round(result["score"], 1))
    emit(step="total", seconds=round(time.perf_counter() - total, 2))

    if args.per_metric:
        table = evaluation.index_set.table(codes)
        for name, plan in evaluation.plans.items():
            t = time.perf_counter()
            result = plan.score(table)[0]
            emit(step="score", metric=name, seconds=round(time.perf_counter() - t, 2),
                 score=round(result["score"], 4))


if __name__ == "__main__":
    main()
