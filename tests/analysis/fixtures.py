"""A fake experiment folder shaped as Ray Tune 2.x, the driver and our trainable write it today.

Six finished trials (3 families × 2 values, 2 replicates, 3 calculations), one trial that has
reported step 0 and a training line but no later evaluation, one trial folder with only
``params.json``, and one diverged member. Scores are seeded and make the WAEs better than the
β-VAE, as in the paper, so tests can check the direction of the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from study.estimates import trial_dirname

STEPS = 200
REPLICATES = 2
CALCULATIONS = 3
VALUES = {"beta_vae": (1.0, 30.0), "wae_gaussian": (0.5, 2.0), "wae_uniform": (0.5, 2.0)}
# (4-var, 5-var, test recon) of the two values of each family.
LEVELS = {
    "beta_vae": ((0.90, 0.70, 80.0), (0.985, 0.84, 160.0)),
    "wae_gaussian": ((0.95, 0.80, 45.0), (0.995, 0.97, 95.0)),
    "wae_uniform": ((0.93, 0.78, 50.0), (0.99, 0.95, 100.0)),
}
SPEC = 'name = "demo <script>alert(1)</script>"\nnote = "a & b <b>bold</b>"\n'
# A study on dsprites_noshape: its one Higgins task is 4var (shape is a nuisance there).
NOSHAPE_SPEC = '[train]\ndataset = "dsprites_noshape"\n'
TASKS = ("4var", "5var")  # the Higgins tasks the fake trials report (dSprites')
DIVERGED = ("wae_uniform", 1)  # (family, value index): its replicate 1 diverged at step 150


def make_experiment(root: Path, name: str = "demo", spec: str | None = SPEC,
                    tasks: tuple[str, ...] = TASKS) -> Path:
    """Write the fake experiment into ``root/name`` and return that folder; its trials
    report the Higgins `tasks` (the study's dataset's: ("4var",) with `NOSHAPE_SPEC`)."""
    exp = root / name
    exp.mkdir(parents=True)
    if spec is not None:
        (exp / "study.toml").write_text(spec, encoding="utf-8")
    (exp / "experiment_state-2025-01-01_00-00-00.json").write_text("{}")
    rng = np.random.default_rng(0)
    index = 0
    for family, values in VALUES.items():
        for v, value in enumerate(values):
            diverged = 1 if (family, v) == DIVERGED else None
            lines = _trial_lines(family, value, LEVELS[family][v], index, rng, diverged, tasks)
            _write_trial(exp, family, value, index, lines)
            index += 1
    partial = _trial_lines("beta_vae", 10.0, (0.95, 0.8, 120.0), index, rng, None, tasks)[:2]
    _write_trial(exp, "beta_vae", 10.0, index, partial)
    _write_trial(exp, "wae_gaussian", 12.0, index + 1, None)
    return exp


def _write_trial(
    exp: Path, family: str, value: float, index: int, lines: list[dict] | None
) -> None:
    params = {"trial": {"family": family, "value": value, "replicates": REPLICATES,
                        "seed": 100 * index, "steps": STEPS}}
    trial = SimpleNamespace(trial_id=f"ab12c_{index:05d}", config=params)
    trial_dir = exp / trial_dirname(trial)  # the folder name the driver gives it today
    trial_dir.mkdir()
    (trial_dir / "params.json").write_text(json.dumps(params))
    if lines is not None:
        text = "\n".join(json.dumps(line) for line in lines) + "\n"
        (trial_dir / "result.json").write_text(text)


def _trial_lines(
    family: str,
    value: float,
    level: tuple[float, float, float],
    index: int,
    rng: np.random.Generator,
    diverged: int | None,
    tasks: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Reports at steps 0, 100, 200; evaluations at 0 (untrained) and 200 (final)."""
    param = "beta" if family == "beta_vae" else "lambda1"
    lines = []
    for n, step in enumerate((0, 100, STEPS)):
        bad = diverged is not None and step >= 150
        diverged_at = [150 if (bad and k == diverged) else -1 for k in range(REPLICATES)]
        line: dict[str, Any] = {
            "trial_id": f"ab12c_{index:05d}", "training_iteration": n + 1,
            "time_total_s": 1.0 + n, "timestamp": 1700000000 + n, "done": step == STEPS,
            "config": {"trial": {"family": family, "value": value}},
            "step": step, "loss": 3000.0 / (1 + step) + level[2], "recon": level[2] + 10 / (1 + n),
            "member_loss": [1.0] * REPLICATES, "diverged_at": diverged_at,
            "n_diverged": sum(a >= 0 for a in diverged_at),
            "family": family, "param": param, "value": value,
        }
        if step in (0, STEPS):
            base = (0.8, 0.6, 2840.0) if step == 0 else level
            line["evaluation"] = [
                _row(step, k, c, 100 * index + k, base, rng, diverged_at[k] >= 0, tasks)
                for k in range(REPLICATES)
                for c in range(CALCULATIONS)
            ]
            for key in (*(f"disentanglement_{task}" for task in tasks), "recon_test"):
                line[key] = 0.5
        lines.append(line)
    return lines


def _row(step, replicate, calculation, seed, base, rng, diverged, tasks) -> dict[str, Any]:
    d4, d5, recon = base
    recon_model = recon + 3.0 * replicate
    scores = {  # each drawn whether reported or not: the other draws stay as they were
        "disentanglement_4var": None if diverged else min(1.0, d4 + rng.uniform(-0.01, 0.005)),
        "disentanglement_5var": None if diverged else min(1.0, d5 + rng.uniform(-0.02, 0.02)),
    }
    return {
        "replicate": replicate, "seed": seed, "calculation": calculation, "step": step,
        "diverged": diverged,
        **{f"disentanglement_{task}": scores[f"disentanglement_{task}"] for task in tasks},
        "recon_test": None if diverged else recon_model,
        "recon_train": None if diverged else recon_model - 2.0,
        "mig": None if diverged else 0.1 * d5,
    }
