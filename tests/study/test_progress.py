"""The driver's progress lines: how many evaluations a trial runs, the wall-time estimate."""

from __future__ import annotations

import pytest

from study.progress import estimate_hours, evaluations_per_trial


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
