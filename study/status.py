"""`wae-study status`: trials by state, steps done, ETA and the best results so far.

Reads only files (each trial's params.json and result.json), so it works while the study
runs, after a crash, and on a copy of the folder.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study import spec as specs
from study.folder import LOCK_NAME
from study.progress import describe
from trainables.config import flat_trial_config


@dataclass
class TrialState:
    name: str
    label: str
    state: str  # finished | running | errored | paused
    step: int
    steps: int
    seconds: float
    last_eval: dict[str, Any] | None


def study_in_progress(experiment_dir: Path) -> bool:
    """True while a run/resume holds the folder's lock."""
    lock = experiment_dir / LOCK_NAME
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _last_lines(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last result and the last result that carries an evaluation."""
    last = last_eval = None
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            last = row
            if "evaluation" in row:
                last_eval = row
    return last, last_eval


def read_trials(experiment_dir: Path) -> list[TrialState]:
    running = study_in_progress(experiment_dir)
    trials = []
    for folder in sorted(p for p in experiment_dir.iterdir() if (p / "params.json").exists()):
        try:
            config = flat_trial_config(json.loads((folder / "params.json").read_text()))
        except json.JSONDecodeError:
            continue
        last, last_eval = _last_lines(folder / "result.json")
        step = int(last["step"]) if last else 0
        steps = int(config.get("steps", 0))
        finished = last_eval is not None and int(last_eval["step"]) >= steps
        errored = (folder / "error.txt").exists() and not finished
        state = ("finished" if finished else "errored" if errored
                 else "running" if running else "paused")
        trials.append(TrialState(folder.name, describe(config), state, step, steps,
                                 float(last.get("time_total_s", 0.0)) if last else 0.0,
                                 last_eval))
    return trials


def status(experiment_dir: Path) -> int:
    experiment_dir = Path(experiment_dir).expanduser().resolve()
    spec = specs.experiment_spec(experiment_dir)
    trials = read_trials(experiment_dir)
    total = specs.n_trials(spec)
    counts = {s: sum(t.state == s for t in trials) for s in ("finished", "running", "paused",
                                                             "errored")}
    pending = max(0, total - len(trials))
    steps_per_trial = spec["train"]["steps"]
    done_steps = sum(min(t.step, t.steps) for t in trials)
    print(f"{experiment_dir.name}: {spec['study']['search']} study, {total} trials × "
          f"{spec['study']['replicates']} replicates; "
          + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
          + (f", {pending} pending" if pending else ""))
    print(f"steps: {done_steps:,} of {total * steps_per_trial:,} "
          f"({100 * done_steps / max(1, total * steps_per_trial):.0f} %)")
    rate = [t.step / t.seconds for t in trials if t.seconds > 0 and t.step > 0]
    remaining = total * steps_per_trial - done_steps
    if rate and remaining > 0:
        parallel = max(1, counts["running"])
        eta = remaining / (sum(rate) / len(rate)) / parallel
        print(f"ETA: about {eta / 60:.0f} min at {sum(rate) / len(rate):.1f} steps/s per trial"
              f" × {parallel} running" + ("" if counts["running"] else " (not running now)"))
    for t in trials:
        score = ""
        if t.last_eval and t.last_eval.get("disentanglement_5var") is not None:
            score = (f"  4-var {t.last_eval['disentanglement_4var']:.3f}  5-var "
                     f"{t.last_eval['disentanglement_5var']:.3f}  recon_test "
                     f"{t.last_eval['recon_test']:.1f} (step {t.last_eval['step']})")
        print(f"  {t.state:9s} {t.label:24s} step {t.step:>7,}/{t.steps:,}{score}")
    scored = [t for t in trials if t.last_eval and t.last_eval.get("disentanglement_5var")
              is not None and t.last_eval["step"] > 0]
    if scored:
        best = max(scored, key=lambda t: t.last_eval["disentanglement_5var"])
        print(f"best 5-var so far: {best.label} {best.last_eval['disentanglement_5var']:.3f} "
              f"(recon_test {best.last_eval['recon_test']:.1f})")
    return 0
