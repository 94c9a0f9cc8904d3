"""Training throughput, model-steps per second, of the paper's fully connected architecture and
disentanglement_lib's convolutional one on dSprites at batch 64.

    .venv/bin/python benchmarks/throughput.py [--device cpu|cuda] [--seconds S]
        [--architecture fc,conv] [--k 1,10,30,90] [--precision fp32,tf32,bf16]
        [--family beta_vae] [--tune]

One JSON object per line, each with its `architecture` ("fc" or "conv"). `impl`: `naive` is K
nn.Modules trained one after another in a plain eager loop, each with torch.optim.Adam, as a
user would write it; `pack` is the project's core (K members stacked, one fused Adam call per
member; fc: batched matmuls, on the CPU an input layer that sums the weight rows of lit
pixels; conv: `trainables.models.ConvPack`); `pack_tune` (with --tune, fc) is the full path
through a Ray Tune trial (`train_trial`), timed between two of its reports.
One model-step is one optimiser step of one model, so a step of K models counts K.
`allocator`: the naive loop runs first with malloc's defaults, then, on glibc, everything
runs with freed memory kept for reuse (`trainables.allocator`, as a CPU trial sets it), the
naive loop again included, so the allocator's share of the gain is on its own lines.

Against the machine: every row carries the FLOPs of one model-step, counted from the
architecture (`model_step_flops`), and the GFLOP/s it achieved. Each fc pack row also carries the
machine's limit for that pack, measured in the same run on the same threads (`machine_limit`):
torch's own batched matmuls for exactly the step's layer shapes and dtype, plus one fused Adam
update over the pack's fp32 parameters, as model-steps/s, and the fraction of it the pack
reached. For bf16 it also times the fp32<->bf16 conversions autocast adds (the weights cast
down for the forward pass, their gradients cast up for Adam), which the limit leaves out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables import conv  # noqa: E402
from trainables.allocator import reuse_freed_memory  # noqa: E402
from trainables.config import SEED_FAMILIES, TrainConfig  # noqa: E402
from trainables.datasets import unpack_rows  # noqa: E402
from trainables.models import PIXELS, layer_shapes  # noqa: E402
from trainables.pack import ADAM_BETAS, ADAM_EPS, PackTrainer  # noqa: E402
from trainables.render import render_packed  # noqa: E402

BATCH = 64
ROWS_STEP = 37  # every 37th dSprites image (19,927): real sprites, ~4 % lit pixels, which the
# CPU input layer's speed depends on (it sums the weight rows of the lit pixels)


def timed(step: Callable[[], None], seconds: float, device: torch.device) -> tuple[int, float]:
    """Run `step` for about `seconds` after a short warm-up; (steps, elapsed) after a sync."""
    for _ in range(2):  # the first step allocates; the second is already steady
        step()
    sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    sync(device)
    return steps, time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dense_layers(cfg: TrainConfig) -> list[tuple[str, int, int]]:
    """(name, fan_in, fan_out) of the matmul layers of one model (the encoder's heads share
    one matmul), from the architecture the trainer builds."""
    shapes = layer_shapes(cfg.latent_dim, cfg.encoder_width, cfg.decoder_width)
    return [(name, fan_in, fan_out) for name, (fan_in, fan_out) in shapes.items()]


def layer_macs(cfg: TrainConfig) -> dict[str, int]:
    """Multiply-adds of each layer's forward pass for one image: in·out for a dense layer;
    for a convolution kh·kw·in·out per output pixel, for a transposed one per input pixel
    (the feature maps halve through the encoder from 64 and double through the decoder)."""
    if cfg.architecture == "fc":
        return {name: fan_in * fan_out for name, fan_in, fan_out in dense_layers(cfg)}
    macs, size = {}, conv.IMAGE_SIZE
    for name, (*kernel, fan_in, fan_out) in conv.layer_shapes(
            (conv.IMAGE_SIZE, conv.IMAGE_SIZE, 1), cfg.latent_dim).items():
        positions = 1
        if name in conv.ENCODER_CONVS:
            size //= conv.STRIDE
            positions = size**2
        elif name in conv.DECODER_CONVS:
            positions = size**2
            size *= conv.STRIDE
        macs[name] = positions * math.prod(kernel) * fan_in * fan_out
    return macs


def model_step_flops(cfg: TrainConfig, lit_pixels: float, sparse_input: bool) -> float:
    """Multiply-adds x 2 of one model's optimiser step at batch `cfg.batch_size`: each layer's
    forward, input gradient and weight gradient (2·B·macs each, `layer_macs`); the input layer
    has no input gradient (the images need none) and, `sparse_input` (the fc pack on the CPU),
    works on the `lit_pixels` non-zero pixels of a batch only: 2·lit·W forward and 2·lit·W for
    its weight gradient. Elementwise work (activations, losses, Adam) is not counted."""
    b, total = cfg.batch_size, 0.0
    for name, macs in layer_macs(cfg).items():
        if name == "enc1":
            total += 4 * (lit_pixels * macs / PIXELS if sparse_input else b * macs)
        else:
            total += 6 * b * macs
    return total


def machine_limit(cfg: TrainConfig, lit_pixels: float, device: torch.device,
                  seconds: float = 1.0) -> dict:
    """This machine's rate for a pack of `cfg.replicates` members, measured now: the step's
    batched matmuls at torch's own speed (each dense layer's forward, input-gradient and
    weight-gradient products, in the pack's dtype), the sparse input layer's FLOPs at the
    matmuls' mean rate, and one fused Adam call over the pack's fp32 parameters. For bf16, also
    the autocast conversions: every weight cast to bf16 and every gradient cast back to fp32."""
    k, b = cfg.replicates, cfg.batch_size
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    torch.set_float32_matmul_precision("high" if cfg.precision == "tf32" else "highest")
    matmul_s, matmul_flops = 0.0, 0.0
    for name, fan_in, fan_out in dense_layers(cfg):
        if name == "enc1" and device.type == "cpu":
            continue  # the sparse layer: counted below at the dense rate
        products = [((b, fan_in), (fan_in, fan_out)), ((fan_in, b), (b, fan_out))]
        if name != "enc1":  # the input layer needs no input gradient
            products.append(((b, fan_out), (fan_out, fan_in)))
        for left, right in products:
            x = torch.randn(k, *left, device=device, dtype=dtype)
            w = torch.randn(k, *right, device=device, dtype=dtype)
            out = torch.empty(k, left[0], right[1], device=device, dtype=dtype)
            matmul_s += per_call(lambda x=x, w=w, out=out: torch.bmm(x, w, out=out), seconds / 20,
                                 device)
            matmul_flops += 2 * k * left[0] * left[1] * right[1]
    rate = matmul_flops / matmul_s
    sparse_flops = k * model_step_flops(cfg, lit_pixels, True) - matmul_flops \
        if device.type == "cpu" else 0.0
    params = [torch.randn(k, fan_in, fan_out, device=device) for _, fan_in, fan_out in
              dense_layers(cfg)]
    grads, avg, avg_sq = ([torch.randn_like(p) for p in params] for _ in range(3))
    steps = [torch.zeros((), device=device) for _ in params]
    adam_s = per_call(lambda: adam(params, grads, avg, avg_sq, [], steps, fused=True,
                                   amsgrad=False, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                   lr=1e-4, weight_decay=0.0, eps=ADAM_EPS, maximize=False),
                      seconds / 4, device)
    step_s = matmul_s + sparse_flops / rate + adam_s
    limit = {"impl": "limit", "architecture": "fc", "device": device.type, "K": k,
             "dtype": cfg.precision,
             "matmul_gflops": round(rate / 1e9, 1), "matmul_ms": round(matmul_s * 1e3, 1),
             "sparse_ms": round(sparse_flops / rate * 1e3, 1), "adam_ms": round(adam_s * 1e3, 1),
             "model_steps_per_s": round(k / step_s, 2)}
    if cfg.precision == "bf16":
        low = [torch.empty_like(p, dtype=torch.bfloat16) for p in params]
        casts_s = per_call(lambda: [(lo.copy_(p), g.copy_(lo)) for lo, p, g in
                                    zip(low, params, grads, strict=True)], seconds / 4, device)
        limit["casts_ms"] = round(casts_s * 1e3, 1)
        limit["model_steps_per_s_with_casts"] = round(k / (step_s + casts_s), 2)
    return limit


def lit_per_batch(packed: torch.Tensor | np.ndarray) -> float:
    """Mean number of non-zero pixels in a batch of these images: the CPU input layer's work."""
    return float(unpack_rows(torch.as_tensor(packed)).count_nonzero()) / len(packed) * BATCH


def per_call(call: Callable[[], object], seconds: float, device: torch.device) -> float:
    """Seconds per call of `call`, timed for about `seconds` after one warm-up call."""
    call()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        call()
        calls += 1
    sync(device)
    return (time.perf_counter() - start) / calls


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def naive_networks(architecture: str, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The β-VAE's encoder and decoder as most people would write them: nn.Sequential with
    PyTorch's default layers, NCHW images for the convolutions."""
    if architecture == "fc":
        encoder = nn.Sequential(nn.Linear(4096, 1200), nn.ReLU(), nn.Linear(1200, 1200),
                                nn.ReLU(), nn.Linear(1200, 32))
        decoder = nn.Sequential(nn.Linear(16, 1200), nn.Tanh(), nn.Linear(1200, 1200),
                                nn.Tanh(), nn.Linear(1200, 1200), nn.Tanh(),
                                nn.Linear(1200, 4096))
    else:
        encoder = nn.Sequential(
            nn.Unflatten(1, (1, 64, 64)), nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 2, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(),
            nn.Linear(256, 32))
        decoder = nn.Sequential(
            nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)), nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 1),
            nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Flatten())
    return encoder.to(device), decoder.to(device)


def naive_step_fn(packed: torch.Tensor, device: torch.device, precision: str,
                  architecture: str, k: int) -> Callable:
    """K β-VAEs (`naive_networks`), each with torch.optim.Adam's defaults, stepped one after
    another, each on its own batch."""
    images = unpack_rows(packed).to(torch.uint8)  # (rows, 4096) uint8 on the device
    models = []
    for _ in range(k):
        encoder, decoder = naive_networks(architecture, device)
        models.append((encoder, decoder, torch.optim.Adam(
            [*encoder.parameters(), *decoder.parameters()], lr=1e-3)))

    def step() -> None:
        for encoder, decoder, optimiser in models:
            x = images[torch.randint(len(images), (BATCH,), device=device)].float()
            with precision_context(precision, device):
                mean, logvar = encoder(x).float().chunk(2, dim=1)
                z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
                logits = decoder(z).float()
            recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = 0.5 * (logvar.exp() - logvar + mean**2 - 1).sum()
            loss = (recon + kl) / BATCH
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    return step


def run_naive(packed: torch.Tensor, device: torch.device, precision: str, seconds: float,
              allocator: str, architecture: str, k: int) -> None:
    steps, elapsed = timed(naive_step_fn(packed, device, precision, architecture, k), seconds,
                           device)
    cfg = pack_config("beta_vae", k, precision, architecture=architecture)
    flops = model_step_flops(cfg, 0.0, sparse_input=False)
    print(json.dumps({**line("naive", device, k, precision, steps, elapsed, "beta_vae", flops,
                             architecture), "allocator": allocator}), flush=True)


def pack_config(family: str, k: int, precision: str, **overrides) -> TrainConfig:
    return TrainConfig(family=family, value=1.0, replicates=k, batch_size=BATCH,
                       precision=precision, **overrides)


def line(impl: str, device: torch.device, k: int, precision: str, steps: int, elapsed: float,
         family: str, flops: float, architecture: str = "fc") -> dict:
    """One row; `flops` is one model-step's (`model_step_flops`)."""
    rate = k * steps / elapsed
    return {"impl": impl, "architecture": architecture, "device": device.type, "K": k,
            "dtype": precision,
            "model_steps_per_s": round(rate, 2), "gflop_per_model_step": round(flops / 1e9, 3),
            "achieved_gflops": round(rate * flops / 1e9, 1), "steps": steps,
            "seconds": round(elapsed, 2), "family": family, "batch": BATCH,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine()}


def tune_line(family: str, k: int, precision: str, pack_rate: float, seconds: float,
              device: torch.device, lit: float, every: int | None = None) -> dict:
    """Time the real trainable inside Ray Tune, between its first and fifth report, reporting
    every `every` steps (default: about seconds / 4 apart); `overhead` is the share of the
    trial's time not spent training, against the bare pack's `pack_rate` measured before;
    `lit` is the mean lit pixels of a batch (`lit_per_batch`), for the FLOP count."""
    import os

    import ray
    from ray import tune

    from trainables.trainable import train_trial

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    every = every or max(1, math.ceil(pack_rate / k * seconds / 4))
    config = {**pack_config(family, k, precision).to_dict(), "steps": 6 * every,
              "report_every": every, "checkpoint_every": 0, "eval_at_start": False,
              "metrics": [], "recon_eval_images": 100, "device": device.type}
    packed = render_packed()
    ray.init(num_cpus=os.cpu_count(), num_gpus=1 if device.type == "cuda" else 0,
             include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as storage:
            resources = {"cpu": os.cpu_count(), "gpu": 1 if device.type == "cuda" else 0}
            trainable = tune.with_resources(tune.with_parameters(train_trial, packed=packed),
                                            resources)
            tuner = tune.Tuner(trainable, param_space=config,
                               run_config=tune.RunConfig(storage_path=storage, verbose=0))
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries only JSON lines
                result = tuner.fit()[0]
            history = result.metrics_dataframe.set_index("step")["time_total_s"]
            elapsed = float(history[5 * every] - history[every])
    finally:
        ray.shutdown()
    cfg = pack_config(family, k, precision)
    flops = model_step_flops(cfg, lit, sparse_input=device.type == "cpu")
    tuned = line("pack_tune", device, k, precision, 4 * every, elapsed, family, flops)
    return {**tuned, "threads": resources["cpu"], "report_every": every,
            "overhead": round(1 - tuned["model_steps_per_s"] / pack_rate, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per config")
    parser.add_argument("--architecture", default="fc,conv",
                        help="fc (the paper's), conv (disentanglement_lib's), or both")
    parser.add_argument("--k", default=None, help="pack sizes (default 1,10 on CPU, "
                        "1,10,30,90 on CUDA)")
    parser.add_argument("--precision", default=None, help="fp32,tf32,bf16 (default fp32,bf16 "
                        "on CPU, fp32,tf32,bf16 on CUDA)")
    parser.add_argument("--family", default="beta_vae",
                        choices=SEED_FAMILIES)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--report-every", type=int, default=None,
                        help="steps between the Tune trial's reports (default: ~seconds/4)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    parser.add_argument("--tune", action="store_true",
                        help="also time the full path through one Ray Tune trial")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    ks = [int(k) for k in (args.k or ("1,10,30,90" if cuda else "1,10")).split(",")]
    precisions = (args.precision or ("fp32,tf32,bf16" if cuda else "fp32,bf16")).split(",")
    architectures = args.architecture.split(",")
    packed = torch.from_numpy(render_packed()[::ROWS_STEP].copy()).to(device)
    lit = lit_per_batch(packed)
    rates = {}
    naive = not args.no_naive
    if naive:  # first with malloc's defaults: the naive loop as a user would run it
        for architecture in architectures:
            for precision in precisions:
                for k in ks:
                    run_naive(packed, device, precision, args.seconds, "default", architecture,
                              k)
    allocator = "reuse" if reuse_freed_memory() else "default"  # as a Tune trial sets it
    for architecture in architectures:
        for precision in precisions:
            for k in ks:
                if naive and allocator == "reuse":
                    run_naive(packed, device, precision, args.seconds, allocator, architecture,
                              k)
                rates[architecture, k, precision] = run_pack(
                    pack_config(args.family, k, precision, architecture=architecture), packed,
                    device, args.seconds, lit, allocator)
    if "fc" in architectures:
        fc_rates = {(k, precision): rate for (architecture, k, precision), rate in
                    rates.items() if architecture == "fc"}
        if args.tune:
            k, precision = ks[0], precisions[0]
            print(json.dumps(tune_line(args.family, k, precision, fc_rates[k, precision],
                                       args.seconds, device, lit, args.report_every)),
                  flush=True)
        print(json.dumps(paper_projection(fc_rates, device)), flush=True)


def run_pack(cfg: TrainConfig, packed: torch.Tensor, device: torch.device, seconds: float,
             lit: float, allocator: str) -> float:
    """Time the project's pack (`PackTrainer`) for `cfg` and print its row (and, fc, the
    machine's limit for it, `machine_limit`); its model-steps per second."""
    trainer = PackTrainer(cfg, packed, torch.arange(len(packed)), device)
    steps, elapsed = timed(trainer.train_step, seconds, device)
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    fc = cfg.architecture == "fc"
    row = {**line("pack", device, cfg.replicates, cfg.precision, steps, elapsed, cfg.family,
                  model_step_flops(cfg, lit, sparse_input=fc and device.type == "cpu"),
                  cfg.architecture), "allocator": allocator}
    if fc:
        limit = machine_limit(cfg, lit, device)
        print(json.dumps(limit), flush=True)
        row["fraction_of_limit"] = round(row["model_steps_per_s"] / limit["model_steps_per_s"],
                                         3)
    print(json.dumps(row), flush=True)
    return row["model_steps_per_s"]


def paper_projection(rates: dict[tuple[int, str], float], device: torch.device) -> dict:
    """Wall time of the `paper` preset's training (270 models × 60,000 steps) at the best
    measured pack rate on this device; evaluation and Tune overhead are not included."""
    from study.presets import PRESETS
    from study.spec import load, n_models

    spec = load("paper")
    model_steps = n_models(spec) * spec["train"]["steps"]
    (k, precision), best = max(rates.items(), key=lambda item: item[1])
    return {"impl": "projection", "preset": "paper", "device": device.type,
            "model_steps": model_steps, "at_K": k, "dtype": precision,
            "model_steps_per_s": round(best, 2), "projected_hours": round(
                model_steps / best / 3600, 2), "note": PRESETS["paper"].description}


if __name__ == "__main__":
    main()
