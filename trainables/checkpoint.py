"""Checkpoints: one `pack.pt` per checkpoint folder, loadable with `weights_only=True`.

Layout of `pack.pt` (tensors, numbers, strings, lists and dicts only):
    format       1
    config       TrainConfig.to_dict()
    step         steps done
    split_seed   the train/test split's seed (also in config; here for readers)
    diverged_at  per member, the step its loss turned non-finite (-1: healthy)
    trainer      PackTrainer.state_dict(): model parameters {name: [K, ...]}, Adam moments and
                 step, frozen mask, diverged_at, the members' generator states, report window
    rng          the process-wide RNG states (torch CPU and CUDA, numpy, python)
    last_eval    the latest evaluation's scalar means and its step, carried into later reports
    evaluation   the rows of the evaluation made at this step (None if none): a trial restored
                 from its final checkpoint reports them again
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.config import TrainConfig
from trainables.experiment import (
    around,
    checkpoint_dirs,
    replacing,
    write_checkpoint_step,
)
from trainables.models import FamilyPack, build_model

FILE = "pack.pt"
FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt; the study layer falls back to another."""


def save(directory: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` as `directory/pack.pt`, atomically (a crash leaves no half file), and
    its step beside it (`experiment.write_checkpoint_step`: which checkpoint is newest)."""
    path = Path(directory) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    if "step" in payload:
        write_checkpoint_step(directory, payload["step"])
    return path


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read `directory/pack.pt`; a missing or unreadable file raises CheckpointError."""
    path = Path(directory) / FILE
    if not path.is_file():
        raise CheckpointError(f"no {FILE} in checkpoint {directory}: not a pack checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt zip archives
        raise CheckpointError(
            f"cannot load {path} ({type(err).__name__}: {err}); the checkpoint is truncated "
            "or corrupt: resume from an earlier checkpoint") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a format-{FORMAT} pack checkpoint")
    return payload


def load_pack(
    checkpoint_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[FamilyPack, TrainConfig]:
    """The trained pack and its config, for evaluation and figures."""
    return pack_from_payload(load(checkpoint_dir, map_location=device), device)


def pack_from_payload(
    payload: dict, device: str | torch.device = "cpu"
) -> tuple[FamilyPack, TrainConfig]:
    """The pack and its config from a loaded `pack.pt` payload, frozen (no gradients)."""
    cfg = TrainConfig.from_saved(payload["config"])
    model = build_model(cfg, device)
    model.load_state_dict(payload["trainer"]["model"])
    model.requires_grad_(False)
    return model, cfg


def rng_state() -> dict[str, Any]:
    """The process-wide RNG states, in weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured (CUDA states only when the devices match)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == \
            torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class Loaded:
    """What `newest_loadable` found: the checkpoint and its `pack.pt` payload (None when
    none loads), and the newer ones skipped with why."""

    path: Path | None
    payload: dict | None
    skipped: list[tuple[Path, str]]


def newest_loadable(trial_dir: str | os.PathLike | None, latest: Path | None = None) -> Loaded:
    """The trial's newest checkpoint that loads: a truncated or corrupt one (a kill during
    the save) falls back to the one before. `latest` (Tune's latest, possibly outside
    `trial_dir`) is tried first, then the trial's checkpoints older than it; without
    `trial_dir` (a checkpoint downloaded from object storage, alone) only `latest`."""
    if latest is None:
        candidates = checkpoint_dirs(trial_dir) if trial_dir is not None else []
    else:
        candidates = [latest, *around(trial_dir, latest)[1]]
    skipped = []
    for candidate in candidates:
        try:
            return Loaded(candidate, load(candidate), skipped)
        except CheckpointError as err:
            skipped.append((candidate, str(err)))
    return Loaded(None, None, skipped)
