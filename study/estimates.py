"""What people read about a study before it finishes: a trial's label and folder name, how
many evaluations a trial runs, and how long the rest takes. Plain arithmetic on the spec and
the result lines, no Ray, so `wae-study status` shares it with the driver's progress lines."""

from __future__ import annotations

from typing import Any

from trainables.config import PARAM_OF, PARAM_SYMBOL, trial_settings


def describe(config: dict[str, Any]) -> str:
    """`wae_gaussian λ1=2` for a trial config (`trial_settings`)."""
    settings = trial_settings(config)
    family = settings.get("family", "?")
    return f"{family} {PARAM_SYMBOL[PARAM_OF.get(family, 'lambda1')]}={settings.get('value', 0):g}"



def trial_dirname(trial: Any) -> str:
    """`<trial id>_<family>_<value>`: short, unique and readable in a file browser."""
    settings = trial_settings(trial.config)
    return f"{trial.trial_id}_{settings.get('family', 'trial')}_{settings.get('value', 0):g}"


ONE_DAY_H = 24.0


def evaluations_per_trial(train: dict[str, Any]) -> int:
    """How many evaluations a trial runs: step 0 (if asked), every `eval_every`, the end."""
    steps, every = int(train["steps"]), int(train["eval_every"])
    periodic = steps // every if every else 1
    return periodic + (1 if every and steps % every else 0) + bool(train["eval_at_start"])


def estimate_hours(trials: int, steps: int, steps_per_s: float, evaluations: int,
                   evaluation_s: float, at_a_time: int) -> float:
    """Wall time of a study whose trials each train `steps` at `steps_per_s` and run
    `evaluations` of `evaluation_s` each, `at_a_time` trials side by side."""
    return eta_seconds(trials * steps, steps_per_s, at_a_time, trials * evaluations,
                       evaluation_s) / 3600


def eta_seconds(remaining_steps: float, steps_per_s: float, at_a_time: int,
                remaining_evaluations: int = 0, evaluation_s: float = 0.0) -> float:
    """Seconds until `remaining_steps` (summed over trials) are trained at `steps_per_s` per
    trial and `remaining_evaluations` of `evaluation_s` each are run, `at_a_time` side by side."""
    seconds = remaining_steps / steps_per_s + remaining_evaluations * evaluation_s
    return seconds / max(1, at_a_time)
