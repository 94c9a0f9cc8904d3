"""Experiments outlive upgrades: a folder written by an earlier version of the project (the
kept fixture `tests/fixtures/interrupted_quick`, a `quick` study SIGKILLed with one trial
finished and one mid-way; its README says which version wrote it) resumes and reports with
this one, from another folder than the one it was written in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.interrupted_quick.make import STEPS
from tests.study.helpers import (
    assert_each_trial_trained_once,
    assert_no_trial_errored,
    cli,
    finish,
    finished,
    trial_dirs,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "interrupted_quick" / "experiment"

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study


def test_an_experiment_written_by_an_earlier_version_resumes_and_reports(dsprites_path,
                                                                          tmp_path, ray_head):
    experiment = tmp_path / "moved"
    shutil.copytree(FIXTURE, experiment)
    assert sum(finished(d, STEPS) for d in trial_dirs(experiment)) == 1  # as it was kept
    code, out, err = finish(cli("status", str(experiment)))
    assert code == 0 and "1 finished, 1 paused" in out, out + err
    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, STEPS)  # the unfinished one continued
    code, out, err = finish(cli("report", str(experiment), "--out", str(tmp_path / "report")))
    assert code == 0, err
    assert (tmp_path / "report" / "index.html").is_file()
    assert len((tmp_path / "report" / "results.csv").read_text().splitlines()) == 1 + 2 * 2 * 3
