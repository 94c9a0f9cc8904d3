"""The GPU checks and figures in one command, JSON lines out; neither Ray nor Optuna imported.

    PYTHONPATH=. python benchmarks/gpu_check.py            # on a CUDA machine, <= 8 minutes
    PYTHONPATH=. python benchmarks/gpu_check.py --dry-run  # the same on the CPU, tiny sizes

Every line has `check`:
  correctness  (a) a pack member against the same member trained alone (max parameter
               difference within `tolerance`), a diverged member skipped by Adam (its weights
               and moments untouched, the others trained), a checkpoint written on the device
               resumed on the CPU and back;
  throughput   (b) `impl` naive (a plain one-model loop) and pack at each K and precision,
               model-steps/s, paper architecture at batch 64, one run;
  metrics      (c) the evaluation of one paper-size model (Higgins 4/5-var with the authors'
               protocol, sampled and posterior-mean reconstruction) on the device, seconds;
  shared       (d) several packs sharing the device at once, separate processes as fractional
               `--gpus-per-trial` places them, and their total model-steps/s;
  paper_slice  (e) one pack per family at the paper protocol's size for a few thousand steps,
               evaluation included, its wall time and the projected Figure 1 time;
  conv         (f) disentanglement_lib's conv networks (`architecture = "conv"`; on a GPU every
               convolution one call grouped by member): a pack member against the same member
               alone for every family, then the naive conv loop and the pack at each K and
               precision, model-steps/s.
  imports      whether Ray or Optuna got imported (they must not: the GPU machine has neither).
`--dry-run` runs every check on the CPU at tiny sizes (the suite runs it), so that on the GPU
the script only has to run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput import BATCH, naive_step_fn, sync, timed  # noqa: E402
from trainables.allocator import reuse_freed_memory  # noqa: E402
from trainables.config import AUTHORS_STEPS, FAMILIES, TrainConfig  # noqa: E402
from trainables.data import DSprites  # noqa: E402
from trainables.evaluate import evaluate_pack  # noqa: E402
from trainables.hardware import device_name  # noqa: E402
from trainables.pack import PackTrainer  # noqa: E402

PAPER_TRIALS = 27  # the paper preset: 3 families × 9 values, each one pack of 10 replicates


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the dry run."""

    width: int
    discriminator_width: int  # FactorVAE's
    latent: int
    ks: tuple[int, ...]
    precisions: tuple[str, ...]
    seconds: float
    correctness_steps: int
    tolerance: float
    shared_processes: int
    shared_k: int
    slice_replicates: int
    slice_steps: int
    higgins_votes: int | None
    classifier_steps: int | None
    recon_images: int
    conv_batch: int  # the conv checks' batch (the conv networks' sizes are fixed)


GPU = Sizes(width=1200, discriminator_width=1000, latent=16, ks=(1, 10, 30, 90, 270),
            precisions=("fp32", "tf32", "bf16"),
            seconds=3.0, correctness_steps=30, tolerance=1e-4, shared_processes=4, shared_k=10,
            slice_replicates=10, slice_steps=2000, higgins_votes=None, classifier_steps=None,
            recon_images=10_000, conv_batch=BATCH)
DRY = Sizes(width=32, discriminator_width=32, latent=4, ks=(1, 2), precisions=("fp32",),
            seconds=0.3,
            correctness_steps=5, tolerance=1e-6, shared_processes=2, shared_k=2,
            slice_replicates=2, slice_steps=20, higgins_votes=100, classifier_steps=50,
            recon_images=100, conv_batch=8)


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def config(sizes: Sizes, **fields) -> TrainConfig:
    base = dict(family="beta_vae", value=1.0, replicates=1, batch_size=BATCH,
                encoder_width=sizes.width, decoder_width=sizes.width, latent_dim=sizes.latent,
                discriminator_width=sizes.discriminator_width,
                higgins_votes=sizes.higgins_votes, higgins_classifier_steps=sizes.classifier_steps,
                recon_eval_images=sizes.recon_images)
    return TrainConfig(**{**base, **fields})


def stacked(trainer: PackTrainer) -> list[torch.Tensor]:
    return [p.detach() for p in trainer.params]


def members_equal_solo(sizes: Sizes, packed: torch.Tensor, device: torch.device, check: str,
                       **overrides) -> None:
    """Member 1 of a pack of 3 against the same member trained alone, every family."""
    rows, steps = torch.arange(len(packed)), sizes.correctness_steps
    for family in FAMILIES:
        pack = PackTrainer(config(sizes, family=family, replicates=3, seeds=[10, 11, 12],
                                  **overrides), packed, rows, device)
        solo = PackTrainer(config(sizes, family=family, seeds=[11], **overrides), packed, rows,
                           device)
        for _ in range(steps):
            pack.train_step()
            solo.train_step()
        diff = max(float((a[1] - b[0]).abs().max())
                   for a, b in zip(stacked(pack), stacked(solo), strict=True))
        emit(check=check, test="member_equals_solo", family=family, steps=steps,
             max_abs_diff=diff, tolerance=sizes.tolerance, ok=diff <= sizes.tolerance)


def check_correctness(sizes: Sizes, packed: torch.Tensor, device: torch.device) -> None:
    """(a): pack member = solo member; a diverged member skipped; device -> CPU -> device."""
    rows = torch.arange(len(packed))
    members_equal_solo(sizes, packed, device, "correctness")

    trainer = PackTrainer(config(sizes, family="wae_gaussian", replicates=3), packed, rows,
                          device)
    with torch.no_grad():
        trainer.model.enc_head_bias[1] = float("inf")  # member 1's loss is not finite
    before = [t.clone() for t in stacked(trainer)]
    for _ in range(3):
        trainer.train_step()
    report = trainer.read_report()
    after = stacked(trainer)
    frozen_same = all(torch.equal(a[1], b[1]) for a, b in zip(after, before, strict=True))
    moments_zero = all(not m[1].any() for m in trainer.optimizer.exp_avg)
    others_moved = all(not torch.equal(after[i][k], before[i][k])
                       for i in (0, len(after) - 1) for k in (0, 2))
    emit(check="correctness", test="diverged_member_skipped", diverged_at=report["diverged_at"],
         frozen_untouched=frozen_same, frozen_moments_zero=moments_zero,
         others_trained=others_moved,
         ok=report["diverged_at"] == [-1, 0, -1] and frozen_same and moments_zero
         and others_moved)

    cfg = config(sizes, family="wae_uniform", replicates=2)
    losses, state = [], None
    for where in (device, torch.device("cpu"), device):
        moved = PackTrainer(cfg, packed.to(where), rows, where)
        if state is not None:
            with warnings.catch_warnings():  # the batch streams restart when the type changes
                warnings.simplefilter("ignore")
                moved.load_state_dict(state)
        for _ in range(3):
            moved.train_step()
        state = moved.state_dict()
        losses.append(moved.read_report()["loss"])
    emit(check="correctness", test="checkpoint_device_cpu_device", steps=moved.step,
         losses=losses, ok=moved.step == 9 and all(np.isfinite(losses)))


def check_throughput(sizes: Sizes, packed: torch.Tensor, device: torch.device,
                     check: str = "throughput", architecture: str = "fc",
                     **overrides) -> dict:
    """(b): the naive loop (the paper's networks, or the conv ones, whatever the sizes: the
    dry run runs it too) and the pack at each K and precision; returns the pack's rates."""
    rates = {}
    for precision in sizes.precisions:
        steps, elapsed = timed(naive_step_fn(packed, device, precision, architecture, 1),
                               sizes.seconds, device)
        emit(check=check, impl="naive", K=1, dtype=precision, device=device.type,
             model_steps_per_s=round(steps / elapsed, 2))
        for k in sizes.ks:
            try:
                trainer = PackTrainer(config(sizes, replicates=k, precision=precision,
                                             architecture=architecture, **overrides), packed,
                                      torch.arange(len(packed)), device)
                steps, elapsed = timed(trainer.train_step, sizes.seconds, device)
            except torch.OutOfMemoryError as err:
                emit(check=check, impl="pack", K=k, dtype=precision, error=str(err)[:200])
                break
            rates[k, precision] = k * steps / elapsed
            emit(check=check, impl="pack", K=k, dtype=precision, device=device.type,
                 model_steps_per_s=round(rates[k, precision], 2))
            del trainer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rates


def check_conv(sizes: Sizes, packed: torch.Tensor, device: torch.device) -> None:
    """(f): the conv packs as (a)'s first check and (b), at the conv networks' own sizes."""
    conv = {"architecture": "conv", "batch_size": sizes.conv_batch}
    members_equal_solo(sizes, packed, device, "conv", **conv)
    check_throughput(sizes, packed, device, "conv", **conv)


def check_metrics(sizes: Sizes, data: DSprites, device: torch.device) -> None:
    """(c): the evaluation of one model of the study's size on the device."""
    cfg = config(sizes)
    trainer = PackTrainer(cfg, data.packed, np.arange(1000), device)
    split = data.split(0)
    start = time.perf_counter()
    rows = evaluate_pack(trainer.model, data, split, cfg, 0, [-1])
    sync(device)
    emit(check="metrics", device=device.type, seconds=round(time.perf_counter() - start, 2),
         protocol=cfg.higgins_protocol, votes=sizes.higgins_votes or 5000,
         classifier_steps=sizes.classifier_steps or 100_000,
         scores={k: round(v, 4) for k, v in rows[0].items()
                 if k.startswith(("disentanglement", "recon")) and v is not None})


def check_shared(sizes: Sizes, device: torch.device, dry_run: bool) -> None:
    """(d): `shared_processes` packs timed at once in separate processes."""
    command = [sys.executable, __file__, "--worker", "--device", device.type,
               *(["--dry-run"] if dry_run else [])]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
               for _ in range(sizes.shared_processes)]
    rates = [json.loads(w.communicate()[0].strip().splitlines()[-1])["model_steps_per_s"]
             for w in workers]
    emit(check="shared", processes=len(rates), K=sizes.shared_k, per_process=rates,
         total_model_steps_per_s=round(sum(rates), 2))


def worker(sizes: Sizes, packed: torch.Tensor, device: torch.device) -> None:
    precision = "tf32" if device.type == "cuda" else "fp32"
    trainer = PackTrainer(config(sizes, replicates=sizes.shared_k, precision=precision), packed,
                          torch.arange(len(packed)), device)
    steps, elapsed = timed(trainer.train_step, 2 * sizes.seconds, device)
    emit(model_steps_per_s=round(sizes.shared_k * steps / elapsed, 2))


def check_paper_slice(sizes: Sizes, data: DSprites, device: torch.device) -> None:
    """(e): one pack per family at the paper's size, `slice_steps` steps + evaluation."""
    split = data.split(0)
    precision = "tf32" if device.type == "cuda" else "fp32"
    total = 0.0
    for family in FAMILIES:
        cfg = config(sizes, family=family, replicates=sizes.slice_replicates, batch_size=100,
                     steps=sizes.slice_steps, precision=precision)
        start = time.perf_counter()
        trainer = PackTrainer(cfg, data.packed, split.train, device)
        for _ in range(cfg.steps):
            trainer.train_step()
        sync(device)
        train_s = time.perf_counter() - start
        rows = evaluate_pack(trainer.model, data, split, cfg, cfg.steps,
                             trainer.read_report()["diverged_at"])
        eval_s = time.perf_counter() - start - train_s
        # a paper pack: 60,000 steps (this rate) and one final evaluation
        total += train_s * AUTHORS_STEPS / cfg.steps + eval_s
        emit(check="paper_slice", family=family, K=cfg.replicates, steps=cfg.steps,
             train_s=round(train_s, 2), eval_s=round(eval_s, 2),
             model_steps_per_s=round(cfg.replicates * cfg.steps / train_s, 2),
             recon_test=round(float(np.nanmean([r["recon_test"] for r in rows])), 1))
    emit(check="paper_slice", projected_figure1_hours=round(
        total / len(FAMILIES) * PAPER_TRIALS / 3600, 2),
        note="27 packs of 10 one after another on this device, each 60,000 steps + evaluation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU at tiny sizes")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --dry-run")
    parser.add_argument("--skip", default="", help="comma-separated checks to skip")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = DRY if args.dry_run else GPU
    device = torch.device(args.device or ("cpu" if args.dry_run else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device; use --dry-run on a CPU machine")
    if device.type == "cpu":
        reuse_freed_memory()
    rows = 20_000 if args.worker else 737_280
    if args.dry_run:  # random rows: the dry run checks the flow, not sprite statistics
        # 1,000 random images about as sparse as dSprites' (6 % of pixels lit, each bit the
        # AND of four random ones; dSprites ~4 %), repeated: half-lit random bits would make
        # the sparse first layer (`lit_pixels`) several times slower than on sprites
        rng = np.random.default_rng(0)
        images = np.bitwise_and.reduce(rng.integers(0, 256, (4, 1000, 512), dtype=np.uint8))
        packed_np = images[rng.integers(0, 1000, rows)]
    else:
        from trainables.render import render_packed
        packed_np = render_packed()
    if args.worker:
        worker(sizes, torch.from_numpy(packed_np[::37].copy()).to(device), device)
        return
    skip = set(filter(None, args.skip.split(",")))
    data = DSprites(packed_np, source="rendered" if not args.dry_run else "random bits")
    packed = torch.from_numpy(packed_np[::37].copy()).to(device)  # 19,927 rows for training
    emit(check="device", device=device.type, torch=torch.__version__,
         name=device_name(device),
         dry_run=args.dry_run)
    start = time.perf_counter()
    steps = {"correctness": lambda: check_correctness(sizes, packed, device),
             "throughput": lambda: check_throughput(sizes, packed, device),
             "metrics": lambda: check_metrics(sizes, data, device),
             "shared": lambda: check_shared(sizes, device, args.dry_run),
             "paper_slice": lambda: check_paper_slice(sizes, data, device),
             "conv": lambda: check_conv(sizes, packed, device)}
    for name, run in steps.items():
        if name in skip:
            continue
        t = time.perf_counter()
        run()
        emit(check="timing", part=name, seconds=round(time.perf_counter() - t, 2))
    emit(check="imports", ray=sys.modules.get("ray") is not None,  # None: blocked
         optuna=sys.modules.get("optuna") is not None,
         seconds=round(time.perf_counter() - start, 2))


if __name__ == "__main__":
    main()
