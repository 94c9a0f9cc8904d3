"""Population-based training: the population, the perturbation rule, the objective, and the
scheduler's per-family quantiles, clones' own seeds and saved state (with stand-in trials)."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest

from search_spaces import pbt
from search_spaces.pbt_scheduler import OBJECTIVE_KEY, STATE_FILE, PBTScheduler
from study import spec as specs
from trainables import objectives

# the stand-in results below hold the test measures: selected on as before validation existed
PBT = specs.load("quick-pbt", ["pbt.select_on=test"])["pbt"]


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
                         "recon_scale": 1000.0, "select_on": "validation"})
    assert got == pytest.approx(expected, nan_ok=True)


# ---- the scheduler, with stand-in trials ----------------------------------------------------
class FakeTrial:
    """What PBT reads of a trial (hashable by identity, as Ray's Trial)."""

    def __init__(self, trial_id: str, family: str, value: float, seeds: list[int],
                 folder) -> None:
        self.trial_id, self.experiment_tag = trial_id, trial_id
        self.config = {"trial": {"family": family, "value": value, "seeds": seeds}}
        self.local_experiment_path, self.evaluated_params = str(folder), {}
        keep = SimpleNamespace(num_to_keep=4)
        self.run_metadata = SimpleNamespace(
            checkpoint_manager=SimpleNamespace(checkpoint_config=keep))
        self.status = "RUNNING"

    def is_finished(self) -> bool:
        return False


def scheduler_with(trials, steps=100, synch=False):
    scheduler = PBTScheduler({**PBT, "perturbation_interval": 10, "synch": synch}, steps)
    controller = SimpleNamespace(search_alg=None)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    return scheduler


@pytest.mark.parametrize(("n", "fraction", "k"), [(1, 0.25, 0), (2, 0.25, 1), (4, 0.25, 1),
                                                   (5, 0.25, 2), (4, 0.5, 2), (5, 0.9, 2)])
def test_quantiles_take_ceil_n_fraction_at_most_half(n, fraction, k):
    scores = {f"t{i}": float(i) for i in range(n)}
    lower, upper = pbt.quantiles({**scores, "unscored": None, "nan": math.nan}, fraction)
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


def test_a_synchronous_population_meets_again_after_a_trial_restored_past_the_meeting(tmp_path):
    """After a resume, a trial restored from its own checkpoint at the meeting step reports
    from the step after it. Ray alone never learns that it got there: the other trial, which
    does report the meeting step, is paused to wait for it, and once the first trial has
    finished no trial is left to run (the study hung)."""
    ahead, behind = trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path)
                              for i in range(2)]
    (tmp_path / STATE_FILE).write_text(json.dumps({  # saved when both met at step 20
        "trials": {t.trial_id: {"last_perturbation_time": 20, "last_train_time": 20,
                                "last_score": 0.1} for t in trials},
        "rng": list(random.Random(0).getstate()), "next_sync": 30}))
    scheduler = scheduler_with(trials, steps=40, synch=True)
    controller = SimpleNamespace(
        search_alg=None, get_trials=lambda: trials,
        get_live_trials=lambda: [t for t in trials if t.status != "TERMINATED"],
        _schedule_trial_save=lambda trial, result: None,
        pause_trial=lambda trial, should_checkpoint: None)
    result = {"disentanglement_5var": 0.5, "recon_test": 100.0}
    scheduler.on_trial_result(controller, ahead, {**result, "step": 35})  # restored at 30
    assert scheduler._trial_state[ahead].last_score is None  # not scored at 30: not ranked
    scheduler.on_trial_result(controller, behind, {**result, "step": 30})
    behind.status = "PAUSED"
    scheduler.on_trial_result(controller, ahead, {**result, "step": 40})
    ahead.status = "TERMINATED"
    assert scheduler.choose_trial_to_run(controller) is behind


@pytest.mark.parametrize("select_on", ["validation", "test"])
def test_clones_follow_the_selected_measures_only(tmp_path, select_on):
    """The test measures rank the population one way, the validation ones the other: a
    study that selects on validation clones by validation alone (the test measures, which the
    report states, play no part), and the old selection by the test ones."""
    trials = [FakeTrial(f"t{i}", "wae_gaussian", float(i), [i], tmp_path) for i in range(4)]
    scheduler = PBTScheduler({**PBT, "perturbation_interval": 10, "synch": True,
                              "select_on": select_on}, 100)
    controller = SimpleNamespace(
        search_alg=None, get_trials=lambda: trials, get_live_trials=lambda: trials,
        _schedule_trial_save=lambda trial, result: object())
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    exploited = []
    scheduler._exploit = lambda _, trial, donor: exploited.append((trial.trial_id,
                                                                  donor.trial_id))
    for i, trial in enumerate(trials):  # test: t0 best ... t3 worst; validation: the reverse
        scheduler.on_trial_result(controller, trial, {
            "step": 10, "disentanglement_5var": 0.9 - 0.2 * i, "recon_test": 100.0,
            "validation_disentanglement_5var": 0.1 + 0.2 * i, "validation_recon": 100.0})
    bottom, top = ({"t0", "t1"}, {"t2", "t3"}) if select_on == "validation" else \
        ({"t2", "t3"}, {"t0", "t1"})
    assert {clone for clone, _ in exploited} == bottom
    assert {donor for _, donor in exploited} <= top
