"""The driver's progress lines: how many evaluations a trial runs, the wall-time estimate."""

from __future__ import annotations

import pytest

from study.estimates import estimate_hours, evaluations_per_trial


@pytest.mark.parametrize(("train", "evaluations"), [
    ({"steps": 600, "eval_every": 0, "eval_at_start": True}, 2),
    ({"steps": 600, "eval_every": 200, "eval_at_start": True}, 4),
    ({"steps": 650, "eval_every": 200, "eval_at_start": False}, 4),
])
def test_evaluations_per_trial(train, evaluations):
    assert evaluations_per_trial(train) == evaluations


def test_estimated_wall_time_of_the_paper_preset_on_a_laptop():
    # 27 trials × (60,000 steps at 1 step/s + 2 evaluations of 100 s), 2 at a time
    hours = estimate_hours(27, 60_000, 1.0, 2, 100.0, 2)
    assert hours == pytest.approx(27 * 60_200 / 2 / 3600)


def test_a_trial_started_again_continues_rather_than_starts(capsys):
    from types import SimpleNamespace

    from study.callbacks.console import ProgressLines

    lines = ProgressLines(2, {"eval_at_start": True})
    trial = SimpleNamespace(trial_id="t", config={"family": "wae_gaussian", "value": 2.0},
                            last_result={})
    lines.on_trial_start(0, [trial], trial)
    trial.last_result = {"step": 300}  # paused by PBT (or a retry): it restarts from there
    lines.on_trial_start(0, [trial], trial)
    said = capsys.readouterr().out.splitlines()
    assert said[0].endswith("started wae_gaussian λ1=2: evaluating the untrained models "
                            "(step 0)")
    assert said[1].endswith("wae_gaussian λ1=2 continues from its checkpoint")
