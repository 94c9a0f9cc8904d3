"""Evaluating every member of a pack: disentanglement metrics and reconstruction errors.

One row per (replicate, metric calculation), the columns of results.csv, plus the scalar means
over healthy members that the reports (and Optuna) use. The metrics come from
`metrics`, the leaf package that imports nothing else of the project. Its suite
draws every sample once from `eval_seed` and scores all members on the same images, so a
model scores the same alone as inside a pack, and every model of a study is compared on
identical votes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

import metrics
from trainables.columns import (
    ROW_KEYS,
    VALIDATION,
    disentanglement,
    scores,
    tasks,
    validation_scores,
)
from trainables.config import TrainConfig
from trainables.data import GroundTruthImages, Split
from trainables.models import FamilyPack

CHUNK = 2048  # images per forward pass while evaluating
RECON_DECODES = {"": "sample", "_mean": "mean"}  # column suffix -> what the decoder gets


def higgins_columns(dataset: str) -> dict[str, str]:
    """Suite metric -> column of each Higgins task of the dataset, in column order
    (`higgins_<task>` -> `disentanglement_<task>`)."""
    return {metrics.HIGGINS + task: disentanglement(task) for task in tasks(dataset)}


def evaluate_pack(
    model: FamilyPack,
    data: GroundTruthImages,
    split: Split,
    cfg: TrainConfig,
    step: int,
    diverged_at: list[int],
) -> list[dict]:
    """Rows for every member; a diverged member is not evaluated: one row of nulls.

    With `cfg.validates`, each row also holds the validation measures (`validation_scores`):
    the Higgins tasks on votes drawn from `validation_seed` and the reconstruction error of
    the validation images, every draw independent of the test measures' `eval_seed`."""
    healthy = [k for k, at in enumerate(diverged_at) if at < 0]
    higgins = higgins_columns(cfg.dataset)
    columns = {name: name for name in cfg.metrics if name != "higgins"}
    if "higgins" in cfg.metrics:
        columns.update(higgins)
    measures = [{columns[name]: result for name, result in member.items()}
                for member in score_members(model, data, cfg, list(columns), healthy)]
    validation = [{}] * len(healthy)
    if cfg.validates and "higgins" in cfg.metrics:
        validation = [{VALIDATION + higgins[name]: result for name, result in member.items()}
                      for member in score_members(model, data, cfg, list(higgins), healthy,
                                                  seed=cfg.validation_seed)]
    measured = [*scores(cfg.dataset), *columns.values(),
                *(validation_scores(cfg.dataset) if cfg.validates else ())]

    rows = []
    for k, seed in enumerate(cfg.member_seeds):
        base = {"replicate": k, "seed": seed, "step": step, "diverged": k not in healthy}
        empty = dict.fromkeys(measured)  # None (JSON null): not measured
        if k not in healthy:
            rows.append({**base, "calculation": 0, **empty})
            continue
        recon = reconstruction_errors(model.member(k), data, split, cfg)
        member = {**measures[healthy.index(k)], **validation[healthy.index(k)]}
        for c, values in enumerate(calculations(member)):
            rows.append({**base, "calculation": c, **empty, **recon, **values})
    return rows


def reconstruction_errors(member: FamilyPack, data: GroundTruthImages, split: Split,
                          cfg: TrainConfig) -> dict[str, float]:
    """One member's `recon_{train,test}` (a posterior sample) and `recon_*_mean` (the
    posterior mean) from `eval_seed`, and `validation_recon` (a sample) from
    `validation_seed` when the config validates."""
    measures = [(f"recon_{part}{suffix}", getattr(split, part), decode, cfg.eval_seed)
                for part in ("train", "test") for suffix, decode in RECON_DECODES.items()]
    if cfg.validates:
        measures.append((VALIDATION + "recon", split.validation, "sample", cfg.validation_seed))
    return {name: float(metrics.reconstruction(
                logits_fn(member, decode, seed), data, indices=indices,
                n=cfg.recon_eval_images, seed=seed)["score"])
            for name, indices, decode, seed in measures}


def calculations(results: dict[str, dict]) -> list[dict[str, float]]:
    """One member's {column: metric result} as one {column: score} per metric calculation
    (the Higgins restarts); a metric with a single score repeats it in each."""
    n = max([len(r.get("calculations") or [0]) for r in results.values()] or [1])
    return [{col: _calculation(result, c, n) for col, result in results.items()}
            for c in range(n)]


def score_members(
    model: FamilyPack, data: GroundTruthImages, cfg: TrainConfig, names: list[str],
    members: list[int], seed: int | None = None,
) -> list[dict[str, dict]]:
    """Per member in `members`, {suite metric name: result}: every member is scored on one set
    of images drawn from `seed` (default `cfg.eval_seed`) and encoded once (empty dicts when
    `names` is)."""
    if not names or not members:
        return [{} for _ in members]
    seed = cfg.eval_seed if seed is None else seed
    suite = metrics.prepare(data, names, seed=seed, options=_options(cfg, model))
    codes = metrics.encode_indices(pack_encoder(model, members, cfg.uniform_code), data,
                                   suite.indices)
    return suite.score(codes)


def summarize(rows: list[dict]) -> dict[str, float]:
    """Per score column: the mean over healthy members of each member's mean over
    calculations (NaN when nothing was measured: reports need a number)."""
    columns = [c for c in rows[0] if c not in ROW_KEYS] if rows else []
    out = {}
    for col in columns:
        per_member: dict[int, list[float]] = {}
        for row in rows:
            if not row["diverged"] and row[col] is not None:
                per_member.setdefault(row["replicate"], []).append(row[col])
        means = [float(np.mean(v)) for v in per_member.values()]
        out[col] = float(np.mean(means)) if means else math.nan
    return out


def _options(cfg: TrainConfig, model: FamilyPack) -> dict[str, dict]:
    """Per-metric options from the config; the Higgins classifier runs on the pack's device."""
    higgins = {"protocol": cfg.higgins_protocol}
    if cfg.higgins_protocol == "authors":
        higgins["device"] = str(_device(model))
        if cfg.higgins_classifier_steps is not None:
            higgins["classifier_steps"] = cfg.higgins_classifier_steps
    if cfg.higgins_votes is not None:
        higgins["votes"] = cfg.higgins_votes
    if "higgins" not in cfg.metrics:
        return {}
    return {name: dict(higgins) for name in higgins_columns(cfg.dataset)}


def _calculation(result: dict, c: int, n: int) -> float:
    """Calculation c of a metric result; a metric with a single score repeats it."""
    calcs = result.get("calculations") or []
    return float(calcs[c]) if len(calcs) == n else float(result["score"])


def _device(model: FamilyPack) -> torch.device:
    return next(model.parameters()).device


def _pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Flat pixels (n, H*W*C) on the device: dSprites' as uint8 (the model's input layer
    takes them as they are), a variant's as float."""
    return torch.as_tensor(np.asarray(images).reshape(len(images), -1), device=device)


def pack_encoder(model: FamilyPack, members: list[int], uniform_code: str = "mu"):
    """encode(images uint8 (n, 64, 64)) -> the metrics' codes (len(members), n, d): the
    encoder's μ (`FamilyPack.code`; 'centre' = the uniform WAE's box centre)."""
    @torch.no_grad()
    def encode(images: np.ndarray) -> np.ndarray:
        return torch.cat([model.code(mean, spread, uniform_code)[members].cpu()
                          for mean, spread in _encoded(model, images)], dim=1).numpy()
    return encode


def logits_fn(member: FamilyPack, decode: str = "sample", seed: int = 0):
    """logits(images uint8 (n, 64, 64)) -> reconstruction logits (n, 4096) on the member's
    device, decoded from one posterior sample per image (decode='sample', the authors'
    measure) or from the posterior mean (decode='mean').

    The samples' noise comes from one CPU generator seeded with `seed`, drawn call after call:
    `metrics.reconstruction` makes the same calls for every member, so every member (on any
    device) decodes with the same noise.
    """
    if decode not in ("sample", "mean"):
        raise ValueError(f"decode must be 'sample' or 'mean', got {decode!r}")
    generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def logits(images: np.ndarray) -> torch.Tensor:
        out = []
        for mean, spread in _encoded(member, images):
            if decode == "mean":
                z = member.posterior_mean(mean, spread)
            else:
                noise = member.noise(*mean.shape[1:], generator=generator).to(mean.device)
                z = member.sample_posterior(mean, spread, noise)
            out.append(member.decode(z)[0])
        return torch.cat(out)
    return logits


def _encoded(model: FamilyPack, images: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, spread), each (K, chunk, d), of `images`, CHUNK images per forward pass."""
    for i in range(0, len(images), CHUNK):
        yield model.encode(_pixels(images[i : i + CHUNK], _device(model)))
