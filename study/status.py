"""`wae-study status`: trials by state, steps done, ETA and the best results so far.

Reads only files (each trial's params.json and result.json, through
`trainables.experiment`), so it works while the study runs, after a crash, and on a copy of
the folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from study import spec as specs
from study.estimates import describe, eta_seconds
from trainables import experiment
from trainables.columns import disentanglement, study_primary_task, study_tasks, task_short
from trainables.result_line import ResultLine


@dataclass
class TrialState:
    name: str
    label: str
    state: str  # finished | running | errored | paused
    step: int
    steps: int
    seconds: float
    last_eval: ResultLine | None  # the latest report made at an evaluation step


def read_trials(experiment_dir: Path) -> list[TrialState]:
    running = experiment.lock_held(experiment_dir)
    trials = []
    for trial in experiment.read_trials(experiment_dir):
        if not trial.config:
            continue  # params.json not written yet: the trial counts as pending
        last = trial.lines[-1] if trial.lines else None
        last_eval = next((line for line in reversed(trial.lines)
                          if line.evaluation is not None), None)
        state = ("finished" if trial.finished else "errored" if trial.errored
                 else "running" if running else "paused")
        trials.append(TrialState(trial.path.name, describe(trial.config), state,
                                 last.step if last else 0, int(trial.config.get("steps", 0)),
                                 (last.time_total_s or 0.0) if last else 0.0, last_eval))
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
        eta = eta_seconds(remaining, sum(rate) / len(rate), parallel)
        print(f"ETA: about {eta / 60:.0f} min at {sum(rate) / len(rate):.1f} steps/s per trial"
              f" × {parallel} running" + ("" if counts["running"] else " (not running now)"))
    primary = study_primary_task(spec)
    for t in trials:
        score = ""
        if t.last_eval and math.isfinite(t.last_eval.score(disentanglement(primary))):
            e = t.last_eval
            score = "".join(f"  {task_short(task)} {e.score(disentanglement(task)):.3f}"
                            for task in study_tasks(spec))
            score += f"  recon_test {e.score('recon_test'):.1f} (step {e.step})"
        print(f"  {t.state:9s} {t.label:24s} step {t.step:>7,}/{t.steps:,}{score}")
    scored = [t for t in trials if t.last_eval and t.last_eval.step > 0
              and math.isfinite(t.last_eval.score(disentanglement(primary)))]
    if scored:
        best = max(scored, key=lambda t: t.last_eval.score(disentanglement(primary)))
        print(f"best {task_short(primary)} so far: {best.label} "
              f"{best.last_eval.score(disentanglement(primary)):.3f} "
              f"(recon_test {best.last_eval.score('recon_test'):.1f})")
    return 0
