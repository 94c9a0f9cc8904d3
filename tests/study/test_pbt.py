"""Population-based training end to end through the real command line: SIGKILL of the driver
after a clone, then `resume`: every trial finishes, none restarts from step 0, the clones'
history and the scheduler's state survive, and the report shows the schedules. `quick-pbt`
as a user runs it (asynchronous, its own population and quantiles, at TINY size) clones and
changes values, uninterrupted (ranked by Pareto fronts) and across a kill and resume (ranked by
its scalar objective)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.study.helpers import (
    TINY,
    assert_each_trial_trained_once,
    assert_no_report_lost,
    assert_no_trial_errored,
    checkpoints,
    cli,
    finish,
    kill_when,
    result_lines,
    trial_dirs,
)

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study

STEPS, INTERVAL = 120, 30


def clones(trial_dirs_: list) -> list[tuple[str, int, int]]:
    return [(d.name, r["step"], r["cloned_at"]) for d in trial_dirs_ for r in result_lines(d)
            if r.get("cloned_from")]


def test_sigkilled_pbt_study_resumes_with_its_history_and_scheduler_state(dsprites_path,
                                                                          tmp_path, ray_head):
    args = ["run", "quick-pbt", "--storage", str(tmp_path), "--name", "p",
            # synchronous: both trials meet at every perturbation step, so the bottom one
            # clones the top one there whatever the timing on a busy machine
            "--set", "pbt.population=2", "--set", f"pbt.perturbation_interval={INTERVAL}",
            "--set", "pbt.synch=true",
            "--set", f"train.steps={STEPS}", "--set", "train.report_every=10",
            "--set", f"train.checkpoint_every={INTERVAL}", "--set", f"train.eval_every={INTERVAL}",
            "--set", "train.interim_higgins_votes=50",
            "--set", "train.interim_higgins_classifier_steps=50",
            "--set", "train.interim_recon_eval_images=50", *TINY]
    experiment = tmp_path / "p"
    proc = cli(*args)
    # kill once a trial has cloned the other and trained on: history to keep, work to resume
    kill_when(proc, experiment, lambda dirs: any(step > cloned_at
                                                 for _, step, cloned_at in clones(dirs)))
    before = clones(trial_dirs(experiment))
    saved = json.loads((experiment / "pbt_state.json").read_text())["trials"]
    assert saved and all(s["last_perturbation_time"] % INTERVAL == 0 for s in saved.values())

    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    assert len(trial_dirs(experiment)) == 2
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, STEPS)  # none restarted from step 0
    after = clones(trial_dirs(experiment))
    assert set(before) <= set(after)
    # synchronous with a population of two: at most one clone per perturbation step, never at
    # the last (a trial killed before its next checkpoint restarts from the same donor's
    # checkpoint: the same clone, said again; Ray skips a clone whose donor has no checkpoint
    # since the resume)
    at = {(name, cloned_at) for name, _, cloned_at in after}
    steps = [c for _, c in at]
    assert steps and len(steps) == len(set(steps))
    assert set(steps) <= set(range(INTERVAL, STEPS, INTERVAL))

    report = experiment / "report"
    schedules = pd.read_csv(report / "pbt_schedules.csv")
    assert set(schedules["trial_id"]) == {d.name[:11] for d in trial_dirs(experiment)}
    assert schedules["cloned_from"].notna().sum() == len(at)  # one row per clone
    progress = pd.read_csv(report / "search_progress.csv")
    assert STEPS in set(progress["x"]) <= set(range(INTERVAL, STEPS + 1, INTERVAL))
    assert (report / "pbt_schedules.png").exists()
    assert "Population-based training" in (report / "report.md").read_text()
    results = pd.read_csv(report / "results.csv")
    assert len(results) == 2 * 2 * 3  # the population's final models


def quick_pbt(storage, name: str, steps: int = 300) -> list[str]:
    """`quick-pbt`'s [pbt] table as it is (asynchronous, population 4, the bottom half
    cloning the top half), its segments of 1,200 steps scaled to 50 (6 of them in 300
    steps), at TINY size."""
    return ["run", "quick-pbt", "--storage", str(storage), "--name", name,
            "--set", f"train.steps={steps}", "--set", "pbt.perturbation_interval=50",
            "--set", "train.report_every=25", "--set", "train.checkpoint_every=50",
            "--set", "train.eval_every=50", "--set", "train.interim_higgins_votes=50",
            "--set", "train.interim_higgins_classifier_steps=50",
            "--set", "train.interim_recon_eval_images=50", *TINY]


def assert_pbt_at_work(experiment) -> None:
    """Several trials cloned another, several trained with more than one value, and the
    report's schedules show each clone."""
    cloned = {name for name, _, _ in clones(trial_dirs(experiment))}
    values = {d.name: {r["value"] for r in result_lines(d)} for d in trial_dirs(experiment)}
    changed = [name for name, seen in values.items() if len(seen) > 1]
    assert len(cloned) >= 2 and len(changed) >= 2, (cloned, values)
    schedules = pd.read_csv(experiment / "report" / "pbt_schedules.csv")
    assert schedules["cloned_from"].notna().sum() >= len(cloned)


EXPLOIT_LEGEND = {"scalar": "#2: second by the objective",
                  "pareto": "F1 #2: front 1, second in MO-PBT's spread order"}


def assert_ranked_by(experiment, exploit: str) -> None:
    """The scheduler's saved ranks are of `exploit`'s kind (pareto: front and place in it),
    and the report's legend explains them."""
    saved = json.loads((experiment / "pbt_state.json").read_text())["trials"].values()
    ranks = [s["rank"] for s in saved if s["rank"]]
    assert ranks and all(set(r) == ({"front", "position"} if exploit == "pareto"
                                    else {"position"}) for r in ranks)
    assert EXPLOIT_LEGEND[exploit] in (experiment / "report" / "report.md").read_text()


def test_quick_pbt_ranked_by_pareto_fronts_clones_and_changes_values(dsprites_path, tmp_path,
                                                                     ray_head):
    """MO-PBT's ranking, on the test measures (every trainable reports them), uninterrupted;
    the default scalar ranking is checked the same way across a kill and resume below."""
    code, out, err = finish(cli(*quick_pbt(tmp_path, "q"), "--set", "pbt.exploit=pareto",
                                "--set", "pbt.select_on=test", joining=ray_head))
    assert code == 0, err
    assert_no_trial_errored(tmp_path / "q")
    assert_no_report_lost(tmp_path / "q", 300, 25)  # trials paused and cloned lose no line
    assert_pbt_at_work(tmp_path / "q")
    assert_ranked_by(tmp_path / "q", "pareto")


def test_quick_pbt_goes_on_cloning_after_a_kill_and_resume(dsprites_path, tmp_path, ray_head):
    """`quick-pbt` as it is (scalar ranking): killed at its first clone, resumed on one trial
    slot (the shared head's one CPU; one GPU per trial on a one-GPU machine), which its
    population of four takes in turns, it clones again; no trial errored, restarted from
    step 0 or lost a report line. On one slot, a trial that kept cloning once ran forever
    while the others waited (search_spaces/pbt_scheduler.py, `_least_trained`)."""
    experiment = tmp_path / "k"
    # 12 segments: a tiny trial runs a segment in well under a second, and seconds can pass
    # between the first clone's line and the kill; enough must be left to clone after it
    steps = 600
    proc = cli(*quick_pbt(tmp_path, "k", steps))
    # killed at its first clone, once every started trial has a checkpoint: one killed before
    # its first would rightly train again from step 0
    kill_when(proc, experiment, lambda dirs: clones(dirs) and all(checkpoints(d) for d in dirs))
    before = set(clones(trial_dirs(experiment)))
    code, out, err = finish(cli("resume", str(experiment), joining=ray_head))
    assert code == 0, err
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, steps)
    assert_no_report_lost(experiment, steps, 25)
    assert_pbt_at_work(experiment)
    assert_ranked_by(experiment, "scalar")
    after = {(name, at) for name, _, at in clones(trial_dirs(experiment))} - {
        (name, at) for name, _, at in before}
    assert after, "no trial cloned after the resume"
