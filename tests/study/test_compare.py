"""Comparisons of searches: pure data expanding into equal-compute studies, and the outcome's
statistics checked on hypervolumes with known answers."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from analysis import inference
from analysis.search_comparison import Outcome, answer_lines, bias_rows, method_rows, pair_rows
from study import compare
from study import spec as specs
from study.errors import BadInput

PRESET = "search-compare-laptop"


def test_a_comparison_expands_the_same_way_every_time_into_equal_compute_studies():
    comparison = compare.load(PRESET)
    studies = compare.expand(comparison)
    assert [s.name for s in studies] == [s.name for s in compare.expand(compare.load(PRESET))]
    # 6 seeds × (grid + 3 adaptive methods × 2 selections)
    assert len(studies) == 6 * 7 and studies[0].name == "grid-s0"
    steps = {s.name: specs.n_models(s.spec) * s.spec["train"]["steps"] for s in studies}
    assert len(set(steps.values())) == 1  # every study the same model-steps
    for study in studies:
        spec = study.spec
        assert spec["study"]["seed"] == study.seed  # the models' seeds follow the search seed
        assert spec["train"]["validation_fraction"] == 0.5  # one test set for every study
        if study.method == "optuna":
            assert spec["adaptive"]["seed"] == study.seed
            assert spec["adaptive"]["select_on"] == study.select_on
        elif study.method.startswith("pbt_"):
            assert spec["pbt"]["exploit"] == study.method.removeprefix("pbt_")
            assert (spec["pbt"]["seed"], spec["pbt"]["population"]) == (study.seed, 6)
        else:  # the grid is PBT's first population
            assert spec["grid"]["wae_gaussian"] == [0.0, 0.1, 0.331, 1.095, 3.626, 12.0]
    names = {s.name for s in studies}
    assert {"optuna_ontest-s4", "pbt_pareto_ontest-s0"} <= names
    assert not any(n.startswith("grid_ontest") for n in names)


def test_a_comparison_round_trips_through_its_toml(tmp_path):
    comparison = compare.load(PRESET)
    assert compare.resolve(tomllib.loads(compare.dumps(comparison))) == comparison
    (tmp_path / compare.FILE).write_text(compare.dumps(comparison))
    assert compare.read(tmp_path) == comparison


@pytest.mark.parametrize(("override", "message"), [
    ("compare.search_seeds=1", "search_seeds must be >= 2"),
    ("compare.trials=1", "trials must be >= 2"),
    ("compare.family='vae'", "is no family"),
    ("compare.methods=['grid','grid']", "each once"),
    ("compare.methods=['bayes']", "methods"),
    ("compare.budget=3", "unknown key 'compare.budget'"),
    ("train.validation_fraction=0", "needs validation images"),
])
def test_bad_comparisons_are_refused_naming_the_key(override, message):
    with pytest.raises(BadInput, match=message):
        compare.load(PRESET, [override])


def table(hv: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"study": f"{m}-s{s}", "method": m, "seed": s, "hv_4var": v, "hv_5var": v,
             "seconds": 10.0} for m, values in hv.items() for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_methods_and_pairs_state_the_means_welch_and_exact_permutation():
    studies = table({"grid": [0.1, 0.2, 0.3, 0.2, 0.2], "pbt_pareto": [0.5, 0.6, 0.7, 0.6, 0.6]})
    methods = method_rows(studies, "5var")
    assert [m["method"] for m in methods] == ["pbt_pareto", "grid"]
    assert methods[0]["mean"] == pytest.approx(0.6)
    half = inference.t_interval(np.array([0.5, 0.6, 0.7, 0.6, 0.6]))
    assert (methods[0]["ci_low"], methods[0]["ci_high"]) == (half.low, half.high)
    (pair,) = pair_rows(studies, "5var", ["grid", "pbt_pareto"])
    assert (pair["better"], pair["worse"]) == ("pbt_pareto", "grid")
    assert pair["difference"] == pytest.approx(0.4)
    assert pair["p_value"] == pytest.approx(2 / math.comb(10, 5))  # fully separated: the floor


def test_selection_bias_is_test_selected_minus_validation_selected():
    studies = table({"optuna": [0.3, 0.4, 0.5], "optuna@test": [0.4, 0.5, 0.6], "grid": [0.1] * 3})
    (row,) = bias_rows(studies, "5var")
    assert row["method"] == "optuna" and row["difference"] == pytest.approx(0.1)


def test_the_answer_says_when_the_seeds_cannot_reach_a_verdict():
    studies = table({"grid": [0.1, 0.2], "optuna": [0.3, 0.4]})
    methods = {t: method_rows(studies, t) for t in ("4var", "5var")}
    pairs = {t: pair_rows(studies, t, ["grid", "optuna"]) for t in ("4var", "5var")}
    for rows in pairs.values():
        for row in rows:
            row["holm_p"] = min(1.0, 2 * row["p_value"])
    lines = answer_lines(Outcome(None, studies, methods, pairs), 2)
    assert lines[1].startswith("5var: optuna has the largest front")
    assert "no pair can be told apart with 2 seeds" in lines[1]


@pytest.mark.integration
@pytest.mark.slow
def test_a_comparison_runs_end_to_end_and_resume_keeps_its_finished_studies(tmp_path, ray_head):
    from tests.study.helpers import TINY, cli, finish

    small = [*TINY, "--set", "compare.search_seeds=2", "--set", "compare.trials=2",
             "--set", "compare.methods=['grid','optuna']",
             "--set", "compare.select_on=['validation']", "--set", "train.steps=40",
             "--set", "train.eval_every=20", "--set", "train.checkpoint_every=20",
             "--set", "pbt.perturbation_interval=20", "--set", "adaptive.startup_trials=1"]
    code, out, err = finish(cli("run", PRESET, "--storage", str(tmp_path), "--name", "c",
                                *small, joining=ray_head), timeout=600)
    assert code == 0, err[-3000:]
    folder = tmp_path / "c"
    assert {p.name for p in folder.iterdir()} >= {"grid-s0", "optuna-s0", "grid-s1",
                                                 "optuna-s1", compare.FILE, "report"}
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith(("4var:",
                                                                              "5var:"))] \
        == ["4var", "5var"]
    studies = pd.read_csv(folder / "report" / "studies.csv")
    assert len(studies) == 4 and studies["hv_5var"].between(0, 1).all()
    assert (studies["finished"] == 2).all()
    times = compare.read_times(folder)
    code, out, err = finish(cli("resume", str(folder), joining=ray_head), timeout=300)
    assert code == 0, err[-3000:]
    assert compare.read_times(folder) == times  # every study had finished: none ran again
