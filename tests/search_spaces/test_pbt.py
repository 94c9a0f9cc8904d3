"""Population-based training: the population, the perturbation rule, the objective, and the
scheduler's per-family quantiles, clones' own seeds and saved state (with stand-in trials)."""

from __future__ import annotations

import json
import math
import pickle
import random
from types import SimpleNamespace

import pytest

from search_spaces import pbt
from search_spaces.pbt_scheduler import OBJECTIVE_KEY, STATE_FILE, PBTScheduler
from study import spec as specs
from trainables import objectives

# the stand-in results below hold the test measures: selected on as before validation existed
PBT = specs.load("quick-pbt", ["pbt.select_on=test"])["pbt"]
RAW = pbt.Scale(0.0, 1.0)  # measures as they are: the closed-form rankings below read them so


@pytest.mark.parametrize(("family", "n", "expected"), [
    ("wae_gaussian", 4, [0.0, 0.1, 1.095, 12.0]),  # λ1's min 0 first, then log-spaced
    ("wae_gaussian", 2, [0.0, 12.0]),
    ("beta_vae", 3, [1.0, 10.0, 100.0]),  # β's min 1 is above the floor
    ("factor_vae", 2, [10.0, 100.0]),  # each family its own parameter's bounds
    ("annealed_vae", 3, [5.0, 22.36, 100.0]),
])
def test_initial_population_is_log_spaced_from_the_floor(family, n, expected):
    assert pbt.initial_values({**PBT, "population": n}, family) == expected


def test_expand_gives_perturbable_trials_with_their_own_seeds():
    spec = specs.load("quick-pbt", ["pbt.families=['beta_vae','wae_gaussian']"])
    configs = specs.expand(spec)
    assert [(c["family"], c["value"]) for c in configs] == [
        ("beta_vae", 1.0), ("beta_vae", 4.642), ("beta_vae", 21.54), ("beta_vae", 100.0),
        ("wae_gaussian", 0.0), ("wae_gaussian", 0.1), ("wae_gaussian", 1.095),
        ("wae_gaussian", 12.0)]
    assert all(c["perturbable"] for c in configs)
    seeds = [s for c in configs for s in c["seeds"]]
    assert len(set(seeds)) == len(seeds) == 8 * 2
    assert specs.n_trials(spec) == 8


class Draws(random.Random):
    """A random.Random whose random() returns the given values in turn."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


@pytest.mark.parametrize(("value", "draws", "expected"), [
    (2.0, (0.9, 0.1), 2.5),      # no resample (0.9 >= 0.25), up: × 1.25
    (2.0, (0.9, 0.7), 1.6),      # down: ÷ 1.25
    (0.0, (0.9, 0.1), 0.125),    # 0 perturbs as if at the floor (0.1)
    (0.1, (0.9, 0.7), 0.0),      # below the floor: the family's min
    (11.0, (0.9, 0.1), 12.0),    # clipped to the max
])
def test_perturbation_rule(value, draws, expected):
    assert pbt.perturb(value, "wae_gaussian", PBT, Draws(*draws)) == pytest.approx(expected)


def test_a_resample_is_log_uniform_within_the_bounds():
    rng = random.Random(3)
    values = [pbt.perturb(2.0, "beta_vae", {**PBT, "resample_probability": 1.0}, rng)
              for _ in range(2000)]
    assert min(values) >= 1.0 and max(values) <= 100.0
    below_10 = sum(v < 10 for v in values) / len(values)  # log-uniform on [1, 100]: one half
    assert below_10 == pytest.approx(0.5, abs=0.04)


@pytest.mark.parametrize(("objective", "d5", "recon", "expected"), [
    ("constrained", 0.8, 100.0, 0.8),           # feasible: the score itself
    ("constrained", 0.8, 300.0, 0.8 - 1.0),     # 300 / 150 - 1 = 1 over
    ("weighted", 0.8, 300.0, 0.8 - 0.3),        # recon / 1000
    ("weighted", None, 300.0, math.nan),
])
def test_objective(objective, d5, recon, expected):
    got = objectives.score_for({"validation_disentanglement_5var": d5, "validation_recon": recon},
                        {**PBT, "objective": objective, "max_recon_test": 150.0,
                         "recon_scale": 1000.0, "select_on": "validation"}, "5var")
    assert got == pytest.approx(expected, nan_ok=True)


# ---- the scheduler, with stand-in trials ----------------------------------------------------
class FakeTrial:
    """What PBT reads of a trial (hashable by identity, as Ray's Trial)."""

    def __init__(self, trial_id: str, family: str, value: float, seeds: list[int],
                 folder) -> None:
        self.trial_id, self.experiment_tag = trial_id, trial_id
        self.config = {"trial": {"family": family, "value": value, "seeds": seeds}}
        self.local_experiment_path, self.evaluated_params = str(folder), {}
        self.local_dir, self.last_result = str(folder), {}  # Ray's policy log on a clone
        keep = SimpleNamespace(num_to_keep=4)
        self.run_metadata = SimpleNamespace(
            checkpoint_manager=SimpleNamespace(checkpoint_config=keep))
        self.status = "RUNNING"
        # a paused top trial's checkpoint, as Ray's `_checkpoint_or_exploit` reads it
        self.temporary_state, self.checkpoint = SimpleNamespace(saving_to=None), None

    def is_finished(self) -> bool:
        return False

    def set_experiment_tag(self, tag: str) -> None:  # what Ray's `_exploit` calls
        self.experiment_tag = tag

    def set_config(self, config: dict) -> None:
        self.config = config


def scheduler_with(trials, steps=100, synch=False, scale=RAW, task="5var", **table):
    scheduler = PBTScheduler({**PBT, "perturbation_interval": 10, "synch": synch, **table},
                             steps, scale, task)
    controller = SimpleNamespace(search_alg=None)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    return scheduler


@pytest.mark.parametrize(("n", "fraction", "k"), [(1, 0.25, 0), (2, 0.25, 1), (4, 0.25, 1),
                                                   (5, 0.25, 2), (4, 0.5, 2), (5, 0.9, 2)])
def test_quantiles_take_ceil_n_fraction_at_most_half(n, fraction, k):
    scores = {f"t{i}": float(i) for i in range(n)}
    ranking = [pbt.scalar_order({**scores, "unscored": None, "nan": math.nan})]
    lower, upper = pbt.quantiles(ranking, fraction)
    assert lower == [f"t{i}" for i in range(k)]
    assert upper == [f"t{i}" for i in range(n - k, n)]


def test_quantiles_are_taken_within_each_family(tmp_path):
    trials = [FakeTrial(f"b{i}", "beta_vae", i + 1.0, [i], tmp_path) for i in range(4)] + \
             [FakeTrial(f"w{i}", "wae_gaussian", float(i), [10 + i], tmp_path) for i in range(4)]
    scheduler = scheduler_with(trials)
    for i, trial in enumerate(trials):  # every β-VAE scores above every WAE
        scheduler._trial_state[trial].last_score = (10 if i < 4 else 0) + i
    lower, upper = scheduler._quantiles()  # quick-pbt's fraction: half of each family
    assert sorted(t.trial_id for t in lower) == ["b0", "b1", "w0", "w1"]
    assert sorted(t.trial_id for t in upper) == ["b2", "b3", "w2", "w3"]


def test_synchronous_mode_saves_each_familys_top_before_its_bottom_clones(tmp_path):
    """Two families in Ray's synchronous mode: the population meets at the perturbation step
    and every bottom trial clones its own family's top, with this round's checkpoint. Ranked
    across families, the WAEs would both lie in the middle, bottom first: it would clone
    before its top trial had saved."""
    trials = [FakeTrial("w0", "wae_gaussian", 0.0, [0], tmp_path),
              FakeTrial("w1", "wae_gaussian", 4.0, [1], tmp_path),
              FakeTrial("b0", "beta_vae", 1.0, [2], tmp_path),
              FakeTrial("b1", "beta_vae", 16.0, [3], tmp_path)]
    scheduler = scheduler_with(trials, synch=True)
    saved, exploited = {}, []
    controller = SimpleNamespace(
        search_alg=None, get_trials=lambda: trials, get_live_trials=lambda: trials,
        _schedule_trial_save=lambda trial, result: saved.setdefault(trial.trial_id, object()))
    scheduler._exploit = lambda _, trial, donor: exploited.append(
        (trial.trial_id, donor.trial_id, donor.trial_id in saved))
    d5 = {"w0": 0.4, "w1": 0.6, "b0": 0.1, "b1": 0.9}  # global order: b0 < w0 < w1 < b1
    for trial in trials:
        scheduler.on_trial_result(controller, trial, {"step": 10, "recon_test": 0.0,
                                                      "disentanglement_5var": d5[trial.trial_id]})
    assert sorted(exploited) == [("b0", "b1", True), ("w0", "w1", True)]


def test_a_clone_keeps_its_own_seeds_and_gets_a_perturbed_value(tmp_path):
    donor = FakeTrial("top", "wae_gaussian", 2.0, [1, 2], tmp_path)
    me = FakeTrial("bottom", "wae_gaussian", 8.0, [3, 4], tmp_path)
    scheduler = scheduler_with([donor, me])
    scheduler._rng = Draws(0.9, 0.1)  # the perturbation rule's draws: no resample, up
    config, _ = scheduler._get_new_config(me, donor)
    assert config["trial"]["seeds"] == [3, 4]
    assert config["trial"]["value"] == pytest.approx(2.0 * 1.25)  # the donor's value, perturbed
    assert donor.config["trial"]["value"] == 2.0  # the donor's own config is untouched


def test_no_perturbation_at_the_last_step_and_state_saved_then_restored(tmp_path):
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(2)]
    scheduler = scheduler_with(trials, steps=100)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None,
                                 pause_trial=lambda trial, should_checkpoint: None)
    result = {"step": 100, "disentanglement_5var": 0.5, "recon_test": 100.0}
    assert scheduler.on_trial_result(controller, trials[0], result) == "CONTINUE"
    assert not (tmp_path / STATE_FILE).exists()
    # the first trial at a perturbation step: scored and saved (no other score yet: no clone)
    scheduler.on_trial_result(controller, trials[0], {**result, "step": 10})
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["trials"]["t0"]["last_perturbation_time"] == 10
    assert saved["trials"]["t0"]["last_score"] == pytest.approx(0.5 - 0.1)
    assert OBJECTIVE_KEY not in result
    # a resumed study's scheduler starts from the saved state
    again = scheduler_with(trials, steps=100)
    state = again._trial_state[trials[0]]
    assert (state.last_perturbation_time, state.last_score) == (10, pytest.approx(0.4))
    assert again._trial_state[trials[1]].last_perturbation_time == 0
    assert again._rng.getstate() == scheduler._rng.getstate()
    assert again._next_perturbation_sync == scheduler._next_perturbation_sync


def test_perturbations_only_at_multiples_of_the_interval(tmp_path):
    """A trial restored after a resume reports from the step after its checkpoint: Ray alone
    would perturb it at that report, where it has no checkpoint to clone or to be cloned."""
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(2)]
    scheduler = scheduler_with(trials, steps=100)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    result = {"disentanglement_5var": 0.5, "recon_test": 100.0}
    assert scheduler.on_trial_result(controller, trials[0], {**result, "step": 15}) == "CONTINUE"
    assert scheduler._trial_state[trials[0]].last_perturbation_time == 0
    scheduler.on_trial_result(controller, trials[0], {**result, "step": 20})
    assert scheduler._trial_state[trials[0]].last_perturbation_time == 20


def resumed_pair(tmp_path, met_at: int):
    """Two synchronous trials resumed from the state saved when both met at `met_at` (the
    next meeting one interval on), and a controller that reads them: (ahead, behind,
    scheduler, controller)."""
    ahead, behind = trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path)
                              for i in range(2)]
    (tmp_path / STATE_FILE).write_text(json.dumps({
        "trials": {t.trial_id: {"last_perturbation_time": met_at, "last_train_time": met_at,
                                "last_score": 0.1} for t in trials},
        "rng": list(random.Random(0).getstate()), "next_sync": met_at + 10}))
    scheduler = scheduler_with(trials, steps=40, synch=True)
    controller = SimpleNamespace(
        search_alg=None, get_trials=lambda: trials,
        get_live_trials=lambda: [t for t in trials if t.status != "TERMINATED"],
        _schedule_trial_save=lambda trial, result: None,
        pause_trial=lambda trial, should_checkpoint: None)
    return ahead, behind, scheduler, controller


def test_a_synchronous_population_meets_again_after_a_trial_restored_past_the_meeting(tmp_path):
    """After a resume, a trial restored from its own checkpoint at the meeting step reports
    from the step after it. Ray alone never learns that it got there: the other trial, which
    does report the meeting step, is paused to wait for it, and once the first trial has
    finished no trial is left to run (the study hung)."""
    ahead, behind, scheduler, controller = resumed_pair(tmp_path, met_at=20)
    result = {"disentanglement_5var": 0.5, "recon_test": 100.0}
    scheduler.on_trial_result(controller, ahead, {**result, "step": 35})  # restored at 30
    assert scheduler._trial_state[ahead].last_score is None  # not scored at 30: not ranked
    scheduler.on_trial_result(controller, behind, {**result, "step": 30})
    behind.status = "PAUSED"
    scheduler.on_trial_result(controller, ahead, {**result, "step": 40})
    ahead.status = "TERMINATED"
    assert scheduler.choose_trial_to_run(controller) is behind


def test_a_synchronous_population_goes_on_when_every_waiting_trial_stands_past_the_meeting(
        tmp_path):
    """After a resume, a trial restored from its own checkpoint at the meeting step (20)
    trains on to the next perturbation step (30) and waits there. The other reaches 20, the
    population meets, and it clones the first, taking its step: both stand at 30, which Ray
    makes the next meeting. Nothing runs, and Ray alone chooses no trial (the study hung)."""
    ahead, behind, scheduler, controller = resumed_pair(tmp_path, met_at=10)
    scheduler.on_trial_result(controller, ahead, {"step": 25, "disentanglement_5var": 0.9,
                                                  "recon_test": 10.0})  # restored at 20
    assert scheduler.on_trial_result(controller, ahead, {
        "step": 30, "disentanglement_5var": 0.9, "recon_test": 10.0}) == "PAUSE"
    ahead.status, ahead.checkpoint = "PAUSED", SimpleNamespace(step=30)  # saved on pausing
    assert scheduler.choose_trial_to_run(controller) is None  # `behind` runs to the meeting
    scheduler.on_trial_result(controller, behind, {"step": 20, "disentanglement_5var": 0.1,
                                                   "recon_test": 100.0})
    behind.status = "PAUSED"
    cloned = behind.run_metadata.checkpoint_manager._latest_checkpoint_result.checkpoint
    assert cloned.step == 30 and scheduler._trial_state[behind].last_train_time == 30
    assert scheduler.choose_trial_to_run(controller) in (ahead, behind)
    assert scheduler._next_perturbation_sync == 40


@pytest.mark.parametrize("synch", [False, True])
def test_the_trial_that_waited_longest_runs_first_among_the_least_trained(tmp_path, synch):
    """One trial slot, four trials: the first-added trial reached step 50, ranked last and
    cloned a trial waiting at 40, taking its step. Ray's tie-break (the order trials were
    added) ran it again, and again after each clone, while the others waited forever (a
    livelock seen with quick-pbt on one slot); the trial that reported longest ago goes next,
    and a trial that has trained less still goes before any."""
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(4)]
    scheduler = scheduler_with(trials, synch=synch)
    scheduler._next_perturbation_sync = 50
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    for trial in (trials[2], trials[1], trials[3], trials[0]):  # t0 reported last
        scheduler.on_trial_result(controller, trial, {"step": 45})
        trial.status = "PAUSED"
    for trial in trials:
        scheduler._trial_state[trial].last_train_time = 40  # t0: its donor's step
    assert scheduler.choose_trial_to_run(controller) is trials[2]
    scheduler._trial_state[trials[3]].last_train_time = 30
    assert scheduler.choose_trial_to_run(controller) is trials[3]


# ---- exploit = "pareto": non-dominated fronts in MO-PBT's spread order ---------------------
# (disentanglement ↑, recon ↓), already normalised; the expected fronts are worked by hand
PARETO_CASES = {
    # one front (higher disentanglement costs reconstruction throughout): the most
    # disentangled first, then the farthest from a (c, 1.13), then b (0.57 from both) before
    # d (0.39 from a)
    "one-front": ({"a": (0.9, 0.9), "b": (0.5, 0.5), "c": (0.1, 0.1), "d": (0.6, 0.65)},
                  [["a", "c", "b", "d"]]),
    # a chain: each point dominated by the one before
    "chain": ({"p3": (0.7, 0.3), "p1": (0.9, 0.1), "p2": (0.8, 0.2)}, [["p1"], ["p2"], ["p3"]]),
    # one point dominates all the others, which share the second front
    "all-dominated-by-one": ({"x": (0.5, 0.5), "top": (0.95, 0.05), "y": (0.4, 0.3)},
                             [["top"], ["x", "y"]]),
    # c and e lie as far from {a, b}: the earlier given goes first
    "distance-tie": ({"a": (1.0, 1.0), "b": (0.0, 0.0), "c": (0.25, 0.25), "e": (0.75, 0.75)},
                     [["a", "b", "c", "e"]]),
    "distance-tie-other-order": ({"a": (1.0, 1.0), "b": (0.0, 0.0), "e": (0.75, 0.75),
                                  "c": (0.25, 0.25)}, [["a", "b", "e", "c"]]),
    # equal points do not dominate each other: both stay on the front, the second last
    # (at distance 0 from the first)
    "duplicates": ({"twin2": (0.5, 0.5), "c": (0.9, 0.9), "twin1": (0.5, 0.5), "e": (0.1, 0.1)},
                   [["c", "e", "twin2", "twin1"]]),
    "duplicate-tops": ({"u": (0.9, 0.1), "v": (0.9, 0.1), "w": (0.5, 0.5)},
                       [["u", "v"], ["w"]]),
    # not measured (NaN: the trial had no evaluation): left out
    "unmeasured": ({"a": (0.9, 0.9), "nan-d": (math.nan, 0.1), "nan-r": (0.99, math.nan),
                    "b": (0.1, 0.1)}, [["a", "b"]]),
    "none-measured": ({"n": (math.nan, math.nan)}, []),
}


@pytest.mark.parametrize("case", list(PARETO_CASES))
def test_pareto_fronts_in_spread_order(case):
    points, fronts = PARETO_CASES[case]
    assert pbt.pareto_fronts(points) == fronts


@pytest.mark.parametrize(("case", "fraction", "bottom", "top"), [
    ("one-front", 0.25, ["d"], ["a"]),
    ("one-front", 0.5, ["d", "b"], ["c", "a"]),
    ("chain", 0.5, ["p3"], ["p1"]),  # at most half of three
    ("all-dominated-by-one", 0.25, ["y"], ["top"]),
    ("unmeasured", 0.25, ["b"], ["a"]),  # two measured: one each
    ("none-measured", 0.5, [], []),
])
def test_pareto_quantiles_take_the_count_rule_on_the_order(case, fraction, bottom, top):
    assert pbt.quantiles(pbt.pareto_fronts(PARETO_CASES[case][0]), fraction) == (bottom, top)


def test_a_single_measured_trial_is_not_ranked_against_itself():
    assert pbt.quantiles(pbt.pareto_fronts({"a": (0.5, 0.5), "b": (math.nan, 1.0)}), 0.5) == (
        [], [])


def test_ranks_name_front_and_position_for_pareto_and_position_for_scalar():
    fronts = PARETO_CASES["all-dominated-by-one"][1]
    assert pbt.ranks(fronts, "pareto") == {"top": {"front": 1, "position": 1},
                                           "x": {"front": 2, "position": 1},
                                           "y": {"front": 2, "position": 2}}
    assert pbt.ranks([pbt.scalar_order({"a": 0.1, "b": 0.7, "c": math.nan})], "scalar") == {
        "b": {"position": 1}, "a": {"position": 2}}


def test_the_box_normalises_disentanglement_from_its_floor_and_recon_by_its_reference():
    assert pbt.Scale(0.2, 200.0).normalised(0.6, 50.0) == pytest.approx((0.5, 0.25))


def measured(d5: float, recon: float, step: int = 10) -> dict:
    return {"step": step, "disentanglement_5var": d5, "recon_test": recon}


# One front in raw units (d5, recon nats). Raw, recon's nats swamp the distances and C goes
# last; in a box of [0.2, 1] × 1000 nats, disentanglement counts and D (near A) goes last.
FRONT = {"A": (1.0, 100.0), "B": (0.2, 0.0), "C": (0.6, 45.0), "D": (0.95, 50.0)}


@pytest.mark.parametrize(("scale", "bottom"), [(pbt.Scale(0.2, 1000.0), "D"), (RAW, "C")])
def test_pareto_ranks_in_the_studys_box(tmp_path, scale, bottom):
    trials = [FakeTrial(name, "wae_gaussian", 1.0, [i], tmp_path) for i, name in enumerate(FRONT)]
    scheduler = scheduler_with(trials, scale=scale, exploit="pareto", quantile_fraction=0.25)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    scheduler._checkpoint_or_exploit = lambda *args: None  # the ranking alone
    for trial in trials:
        scheduler.on_trial_result(controller, trial, measured(*FRONT[trial.trial_id]))
    lower, upper = scheduler._quantiles()
    assert ([t.trial_id for t in lower], [t.trial_id for t in upper]) == ([bottom], ["A"])


def test_pareto_ranks_each_family_on_its_own(tmp_path):
    """Every β-VAE dominates every WAE: ranked together, the WAEs would be the bottom half."""
    points = {"b0": (0.9, 10.0), "b1": (0.8, 20.0), "w0": (0.3, 90.0), "w1": (0.4, 80.0)}
    trials = [FakeTrial(name, "beta_vae" if name[0] == "b" else "wae_gaussian", 1.0, [i],
                        tmp_path) for i, name in enumerate(points)]
    scheduler = scheduler_with(trials, exploit="pareto")
    for trial in trials:
        scheduler._save_trial_state(scheduler._trial_state[trial], 10,
                                    {"pbt_objective": 0.0, **measured(*points[trial.trial_id])},
                                    trial)
    lower, upper = scheduler._quantiles()
    assert sorted(t.trial_id for t in lower) == ["b1", "w0"]
    assert sorted(t.trial_id for t in upper) == ["b0", "w1"]


def test_pareto_state_saved_and_a_resumed_study_ranks_the_same(tmp_path):
    """pbt_state.json keeps each trial's two measures and rank; a resumed scheduler reads them
    back and ranks as the one before, though no trial has reported since."""
    trials = [FakeTrial(name, "wae_gaussian", 1.0, [i], tmp_path) for i, name in enumerate(FRONT)]
    scale = pbt.Scale(0.2, 1000.0)
    scheduler = scheduler_with(trials, scale=scale, exploit="pareto", quantile_fraction=0.25)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    scheduler._checkpoint_or_exploit = lambda *args: None
    for trial in trials:
        scheduler.on_trial_result(controller, trial, measured(*FRONT[trial.trial_id]))
    saved = json.loads((tmp_path / STATE_FILE).read_text())["trials"]
    assert {name: s["measures"] for name, s in saved.items()} == {
        name: list(point) for name, point in FRONT.items()}
    assert {name: s["rank"] for name, s in saved.items()} == {  # spread order: A, B, C, D
        name: {"front": 1, "position": i} for i, name in enumerate("ABCD", 1)}
    again = scheduler_with(trials, scale=scale, exploit="pareto", quantile_fraction=0.25)
    assert again._quantiles() == scheduler._quantiles()
    assert [t.trial_id for t in again._quantiles()[0]] == ["D"]
    assert again._ranks == scheduler._ranks


def test_a_scheduler_pickled_before_pareto_existed_resumes_by_score(tmp_path):
    """`resume` unpickles the scheduler Tune saved when the study started: one from before
    `exploit` and `select_on` existed has neither key, no measures and no ranks, and ranks by
    score on the test measures; one from before datasets has no task: dSprites' 5var."""
    scheduler = scheduler_with([], task="4var")  # pickled as Tune does, before any trial
    for name in ("_measures", "_ranks", "_scale", "_task"):
        delattr(scheduler, name)
    scheduler._pbt = {k: v for k, v in scheduler._pbt.items()
                      if k not in ("exploit", "select_on")}
    old = pickle.loads(pickle.dumps(scheduler))
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(2)]
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    old._checkpoint_or_exploit = lambda *args: None
    for i, trial in enumerate(trials):
        old.on_trial_add(controller, trial)
        old.on_trial_result(controller, trial, measured(0.5 + 0.1 * i, 100.0))
    assert [[t.trial_id for t in side] for side in old._quantiles()] == [["t0"], ["t1"]]
    old._write_state(None, trials[0])
    saved = json.loads((tmp_path / STATE_FILE).read_text())["trials"]
    assert saved["t1"]["rank"] == {"position": 1}


@pytest.mark.parametrize("exploit", ["scalar", "pareto"])
@pytest.mark.parametrize("select_on", ["validation", "test"])
def test_either_exploit_ranks_by_the_selected_measures(tmp_path, exploit, select_on):
    """The test measures rank the population one way (a chain: t0 dominates t1, ...), the
    validation ones the reverse: the ranking follows `select_on` alone."""
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(4)]
    scheduler = scheduler_with(trials, exploit=exploit, select_on=select_on)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    scheduler._checkpoint_or_exploit = lambda *args: None
    for i, trial in enumerate(trials):
        scheduler.on_trial_result(controller, trial, {
            **measured(0.9 - 0.2 * i, 10.0 + 10 * i),
            "validation_disentanglement_5var": 0.1 + 0.2 * i, "validation_recon": 40.0 - 10 * i})
    lower, upper = scheduler._quantiles()
    worst_first = ["t0", "t1", "t2", "t3"]
    assert [t.trial_id for t in lower + upper] == (
        worst_first if select_on == "validation" else worst_first[::-1])


@pytest.mark.parametrize("exploit", ["scalar", "pareto"])
def test_either_exploit_ranks_by_the_studys_primary_task(tmp_path, exploit):
    """A dsprites_noshape study's primary task is 4var: the ranking reads its score, never a
    5var score beside it (here ranking the population the other way round)."""
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(4)]
    scheduler = scheduler_with(trials, exploit=exploit, select_on="test", task="4var")
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: trials,
                                 _schedule_trial_save=lambda trial, result: None)
    scheduler._checkpoint_or_exploit = lambda *args: None
    for i, trial in enumerate(trials):
        scheduler.on_trial_result(controller, trial, {
            **measured(0.9 - 0.2 * i, 40.0), "disentanglement_4var": 0.1 + 0.2 * i})
    lower, upper = scheduler._quantiles()
    assert [t.trial_id for t in lower + upper] == ["t0", "t1", "t2", "t3"]
    assert scheduler._measures[trials[3]] == pytest.approx((0.7, 40.0))
