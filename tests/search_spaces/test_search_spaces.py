"""The paper's grids as data, the Optuna searcher's set-up and the crash reconciliation."""

from __future__ import annotations

import dataclasses
import pickle

import optuna
import pytest

from search_spaces import adaptive, grids, seeds
from study.tables import AdaptiveTable
from trainables.config import FAMILIES, PARAM_OF, SEED_FAMILIES

ADAPTIVE = {**dataclasses.asdict(AdaptiveTable()), "max_recon_test": 100.0}
STUDY = {"seed": 0, "replicates": 3, "seeds": "independent"}


def test_paper_grid_is_the_seed_papers():
    assert grids.PAPER_GRID["beta_vae"] == (1, 3, 10, 20, 30, 40, 50, 75, 100)
    assert grids.PAPER_GRID["wae_uniform"] == (0, 0.1, 0.5, 1, 2, 3, 5, 8, 12)
    points = grids.grid_points({k: list(v) for k, v in grids.PAPER_GRID.items()},
                               list(SEED_FAMILIES))
    assert len(points) == 27 and points[9] == ("wae_gaussian", 0.0)


def test_baseline_grids_are_disentanglement_libs_study():
    """unsupervised_study_v1 of Locatello et al. 2019, one grid per family the seed lacks."""
    assert set(grids.DEFAULT_GRID) == set(FAMILIES)
    assert grids.BASELINE_GRID["beta_tcvae"] == (1, 2, 4, 6, 8, 10)
    assert grids.BASELINE_GRID["dip_vae_i"] == grids.BASELINE_GRID["dip_vae_ii"] == (
        1, 2, 5, 10, 20, 50)
    assert grids.BASELINE_GRID["annealed_vae"] == (5, 10, 25, 50, 75, 100)
    assert grids.BASELINE_GRID["factor_vae"] == (10, 20, 30, 40, 50, 100)


@pytest.mark.parametrize("d5, recon, expected", [(0.9, 80.0, 0.9), (0.9, 100.0, 0.9),
                                                 (0.9, 150.0, 0.4), (0.5, float("nan"), None)])
def test_constrained_score(d5, recon, expected):
    score = adaptive.constrained_score(
        {"validation_disentanglement_5var": d5, "validation_recon": recon}, ADAPTIVE, "5var")
    assert score == pytest.approx(expected) if expected is not None else score is None


@pytest.mark.parametrize(("select_on", "keys"), [
    ("validation", ("validation_disentanglement_4var", "validation_recon")),
    ("test", ("disentanglement_4var", "recon_test"))])
def test_the_searches_select_on_the_studys_primary_task(tmp_path, select_on, keys):
    """A dsprites_noshape study's primary task is 4var: the Optuna objectives, the constrained
    score and the reconciliation read its measures."""
    table = {**ADAPTIVE, "select_on": select_on}
    assert adaptive.objective_metrics(table, "4var") == list(keys)
    result = {keys[0]: 0.9, keys[1]: 150.0, "disentanglement_5var": 0.1,
              "validation_disentanglement_5var": 0.1}
    assert adaptive.constrained_score(result, table, "4var") == pytest.approx(0.4)
    searcher = adaptive.make_searcher({**table, "objective": "constrained"}, STUDY, tmp_path,
                                      "4var")
    assert searcher._task == "4var"  # what it scores each finished trial on
    assert pickle.loads(pickle.dumps(searcher))._task == "4var"  # as Tune saves it
    legacy = pickle.loads(pickle.dumps(searcher))
    del legacy.__dict__["_task"]  # a searcher pickled before datasets
    assert legacy._task == "5var"


@pytest.mark.parametrize("objective", ["pareto", "constrained"])
def test_searcher_uses_sqlite_storage(tmp_path, objective):
    searcher = adaptive.make_searcher({**ADAPTIVE, "objective": objective}, STUDY, tmp_path,
                                      "5var")
    pareto = ["validation_disentanglement_5var", "validation_recon"]
    assert searcher.metric == (pareto if objective == "pareto"
                               else adaptive.CONSTRAINED_METRIC)
    searcher.set_search_properties(None, None, {})  # creates the study in optuna.db
    suggestion = searcher.suggest("t1")["trial"]  # every search's trial config shape
    assert suggestion["family"] in ADAPTIVE["families"]
    assert 0.0 <= suggestion["value"] <= 12.0
    assert (tmp_path / "optuna.db").exists()
    study = optuna.load_study(study_name=f"wae-study-{tmp_path.name}",
                              storage=adaptive.storage_url(tmp_path))
    assert study.metric_names == (pareto if objective == "pareto"
                                  else [adaptive.CONSTRAINED_METRIC])
    # each Optuna trial number its own member seeds, the rule of search_spaces.seeds
    second = searcher.suggest("t2")["trial"]
    assert suggestion["seeds"] == seeds.trial_seeds(0, 0, 3, "independent")
    assert second["seeds"] == seeds.trial_seeds(0, 1, 3, "independent")
    assert not set(suggestion["seeds"]) & set(second["seeds"])


@pytest.mark.parametrize(("design", "distinct"), [("independent", 270), ("paired", 10)])
def test_member_seeds_of_the_paper_grid(design, distinct):
    all_seeds = [seeds.trial_seeds(0, t, 10, design) for t in range(27)]
    assert len({s for trial in all_seeds for s in trial}) == distinct
    assert all(0 <= s < 2**63 for trial in all_seeds for s in trial)
    assert seeds.trial_seeds(1, 0, 10, design) != all_seeds[0]  # the study seed matters


def test_reconcile_leaves_one_complete_per_finished_trial_and_nothing_running(tmp_path):
    url = adaptive.storage_url(tmp_path)
    study = optuna.create_study(study_name=adaptive.study_name(tmp_path), storage=url,
                                directions=["maximize", "minimize"])
    space = {"family": optuna.distributions.CategoricalDistribution(ADAPTIVE["families"]),
             "value": optuna.distributions.FloatDistribution(0.0, 12.0)}
    done = study.ask(space)
    study.tell(done, [0.8, 90.0])
    orphan_finished = study.ask(space)  # the driver died before telling Optuna
    orphan_lost = study.ask(space)  # the driver died before Tune saved this trial
    finished = [
        {"family": done.params["family"], "value": done.params["value"],
         "validation_disentanglement_5var": 0.8, "validation_recon": 90.0},
        {"family": orphan_finished.params["family"], "value": orphan_finished.params["value"],
         "validation_disentanglement_5var": 0.7, "validation_recon": 70.0},
    ]
    outcome = adaptive.reconcile(tmp_path, finished, ADAPTIVE, "5var")
    assert outcome == {"completed": 1, "failed": 1}
    states = {t.number: t.state for t in optuna.load_study(
        study_name=adaptive.study_name(tmp_path), storage=url).trials}
    assert states[orphan_finished.number] == optuna.trial.TrialState.COMPLETE
    assert states[orphan_lost.number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states.values()


def test_every_family_is_searched_within_its_own_parameters_bounds(tmp_path):
    """Each family's value comes from its parameter's [min, max], under that parameter's
    Optuna name (β shared by the β-VAE and β-TCVAE, λ1 kept as `value`)."""
    table = {**ADAPTIVE, "families": list(FAMILIES), "sampler": "random",
             "beta_min": 1.0, "beta_max": 2.0, "lambda1_min": 3.0, "lambda1_max": 4.0,
             "lambda_od_min": 5.0, "lambda_od_max": 6.0, "c_max_min": 7.0, "c_max_max": 8.0,
             "gamma_min": 9.0, "gamma_max": 10.0}
    searcher = adaptive.make_searcher(table, STUDY, tmp_path, "5var")
    searcher.set_search_properties(None, None, {})
    seen = set()
    for i in range(60):
        trial = searcher.suggest(f"t{i}")["trial"]
        low, high = grids.param_bounds(table, trial["family"])
        assert low <= trial["value"] <= high and set(trial) == {"family", "value", "seeds"}
        seen.add(trial["family"])
    assert seen == set(FAMILIES)
    study = optuna.load_study(study_name=adaptive.study_name(tmp_path),
                              storage=adaptive.storage_url(tmp_path))
    names = {name for t in study.trials for name in t.params} - {"family"}
    assert names == {"value", "beta", "lambda_od", "c_max", "gamma"}
    assert {adaptive.optuna_param(f) for f in FAMILIES} == names
    assert adaptive.optuna_param("beta_tcvae") == PARAM_OF["beta_tcvae"] == "beta"


def test_reconcile_matches_a_family_by_its_own_parameter(tmp_path):
    study = optuna.create_study(study_name=adaptive.study_name(tmp_path),
                                storage=adaptive.storage_url(tmp_path),
                                directions=["maximize", "minimize"])
    orphan = study.ask({"family": optuna.distributions.CategoricalDistribution(["factor_vae"]),
                        "gamma": optuna.distributions.FloatDistribution(10.0, 100.0)})
    finished = [{"family": "factor_vae", "value": orphan.params["gamma"],
                 "validation_disentanglement_5var": 0.6, "validation_recon": 50.0}]
    assert adaptive.reconcile(tmp_path, finished, ADAPTIVE, "5var") == {"completed": 1,
                                                                      "failed": 0}
