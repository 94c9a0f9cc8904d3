"""`precision = "auto"`: bf16 where this machine trains faster in it, measured, else fp32.

bf16 pays off on a CPU only with native bf16 dot products: measured on 2-core machines, the
pack is ~1.4-1.7x faster in bf16 with AVX512-BF16 and ~5x slower without (AVX2 only), so the
CPU's flags decide whether bf16 is worth trying, and a short probe of the trial's own step
(both precisions, its layer sizes and batch) confirms it, once per machine and shape, so the
trials of a study on one kind of machine train alike. On CUDA `auto` is fp32 until
`benchmarks/gpu_check.py` has measured bf16 there. The choice is made once per trial and kept
in its checkpoints: a resumed trial trains on in the precision it started with.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.config import TrainConfig
from trainables.datasets import Dataset
from trainables.experiment import write_atomic
from trainables.families import FAMILIES
from trainables.hardware import NATIVE_BF16_FLAGS, cpu_flags, cpu_name, native_bf16
from trainables.pack import PackTrainer

PROBE_ROUNDS = 5  # timed steps per precision, taken in turn, after one warm-up step each
PROBE_MEMBERS = 2  # members of the probe's packs (at most the trial's)
CACHE_FILE = "wae-study-precision.json"  # the probe's rates, per machine and step shape
PROBE_MARGIN = 1.1  # bf16 must be this much faster: a near tie is noise, and fp32 is exact


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a trial trains in, and why (for its log, results and report)."""

    precision: str  # "fp32", "tf32" or "bf16"
    reason: str


Probe = Callable[[TrainConfig], dict[str, float]]


def probe_rates(packed: np.ndarray | torch.Tensor, train_indices: np.ndarray,
                device: torch.device, rounds: int = PROBE_ROUNDS,
                dataset: Dataset | None = None) -> Probe:
    """A probe of the trial's own step: model-steps/s in fp32 and in bf16, from two throwaway
    packs of the trial's configuration (its layer sizes and batch; at most `PROBE_MEMBERS`
    members, which bounds the probe's memory and time: the ratio hardly depends on K). The two
    step in turn, `rounds` times after a warm-up step each, and each rate is from the median
    step, so a load that comes and goes (the other trials of the study) slows both alike. The
    trial's own pack and streams are made afterwards, untouched."""

    def probe(cfg: TrainConfig) -> dict[str, float]:
        members = min(cfg.replicates, PROBE_MEMBERS)
        small = dataclasses.replace(cfg, replicates=members, seeds=cfg.member_seeds[:members])
        trainers = {precision: PackTrainer(dataclasses.replace(small, precision=precision),
                                           packed, train_indices, device, dataset)
                    for precision in ("fp32", "bf16")}
        times: dict[str, list[float]] = {precision: [] for precision in trainers}
        for round_ in range(rounds + 1):
            for precision, trainer in trainers.items():
                start = time.perf_counter()
                trainer.train_step()
                trainer.read_report()  # waits for the device
                if round_:  # the first step allocates
                    times[precision].append(time.perf_counter() - start)
        return {precision: members / statistics.median(steps)
                for precision, steps in times.items()}

    return probe


def choose_precision(cfg: TrainConfig, device: torch.device, probe: Probe,
                     cpuinfo: Path = Path("/proc/cpuinfo"),
                     cache_dir: Path | None = None) -> PrecisionChoice:
    """The precision to train `cfg` in: `cfg.precision` unless it is "auto"; then fp32 on
    CUDA and on CPUs without native bf16, and on the others bf16 when the probe measures it at
    least `PROBE_MARGIN` times faster than fp32. The probe runs once per machine and step shape
    (`probed_rates`), so all the trials of a study on one machine choose alike."""
    if cfg.precision != "auto":
        return PrecisionChoice(cfg.precision, "set in [train]")
    if device.type != "cpu":
        return PrecisionChoice("fp32", "auto on CUDA: fp32 until benchmarks/gpu_check.py "
                                       "measures bf16 there")
    native = native_bf16(cpu_flags(cpuinfo))
    if not native:
        return PrecisionChoice("fp32", "auto: the CPU has no native bf16 "
                                       f"({' or '.join(NATIVE_BF16_FLAGS)} not in its flags)")
    rates, when = probed_rates(cfg, probe, native, cache_dir or Path(tempfile.gettempdir()))
    measured = (f"the probe ran bf16 at {rates['bf16']:.1f} and fp32 at {rates['fp32']:.1f} "
                f"model-steps/s ({when})")
    if rates["bf16"] >= PROBE_MARGIN * rates["fp32"]:
        return PrecisionChoice("bf16", f"auto: {', '.join(native)} in the CPU flags and "
                                       f"{measured}")
    return PrecisionChoice("fp32", f"auto: {', '.join(native)} in the CPU flags but {measured}; "
                                   f"bf16 must be {PROBE_MARGIN}x faster")


def probed_rates(cfg: TrainConfig, probe: Probe, native: list[str],
                 cache_dir: Path) -> tuple[dict[str, float], str]:
    """The probe's rates for this machine and the step's shape, and when they were measured.

    Measured once and kept in `<cache_dir>/wae-study-precision.json` (the node's temporary
    folder; delete it to measure again), keyed by what the rates depend on: the CPU and its
    bf16 flags, torch, its threads and the step's sizes (not the family: the matmuls are the
    same, but for FactorVAE's discriminators, whose sizes join the key). A lock makes trials
    starting together wait for the first one's probe instead of each measuring under the
    others' load."""
    key = json.dumps([cpu_name(), native, torch.__version__, torch.get_num_threads(),
                      cfg.batch_size, cfg.latent_dim, cfg.encoder_width, cfg.decoder_width,
                      min(cfg.replicates, PROBE_MEMBERS),
                      *([cfg.discriminator_width, cfg.discriminator_layers]
                        if FAMILIES[cfg.family].discriminator else [])])
    cache = cache_dir / CACHE_FILE
    with open(cache_dir / f"{CACHE_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        entry = known.get(key) if isinstance(known, dict) else None
        if isinstance(entry, dict) and {"fp32", "bf16", "at"} <= set(entry):
            return {p: float(entry[p]) for p in ("fp32", "bf16")}, \
                f"measured on this machine at {entry['at']}"
        rates = probe(cfg)
        at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        known = {**(known if isinstance(known, dict) else {}), key: {**rates, "at": at}}
        write_atomic(cache, json.dumps(known, indent=1) + "\n")
    return rates, f"measured now, {at}"
