"""Reading experiment folders: finished, partial, resumed, damaged and empty."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.results import contract_columns, load_results, usable
from tests.analysis.fixtures import CALCULATIONS, NOSHAPE_SPEC, REPLICATES, make_experiment
from trainables.experiment import read_params

CONTRACT_COLUMNS = contract_columns("dsprites")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return load_results(make_experiment(tmp_path_factory.mktemp("results")))


def test_latest_evaluation_rows_in_contract_layout(study):
    table = study.results
    assert list(table.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert "diverged" in table and "mig" in table  # extra metric columns are kept
    assert len(table) == 6 * REPLICATES * CALCULATIONS  # the partial trials add no rows
    assert set(table["step"]) == {200}
    assert set(table["family"]) == {"beta_vae", "wae_gaussian", "wae_uniform"}
    assert set(table.loc[table["family"] == "beta_vae", "param"]) == {"beta"}
    assert set(table.loc[table["family"] != "beta_vae", "param"]) == {"lambda1"}


def test_step0_baseline_and_curves(study):
    assert set(study.baseline["step"]) == {0}
    # the partial beta_vae trial has its step-0 evaluation too
    assert study.baseline["trial_id"].nunique() == 7
    assert len(study.curves) == 6 * 3 + 2
    assert {"step", "loss", "recon"} <= set(study.curves.columns)


def test_diverged_member_is_flagged_kept_and_listed(study):
    flagged = study.results[study.results["diverged"]]
    assert len(flagged) == CALCULATIONS and set(flagged["replicate"]) == {1}
    assert flagged["disentanglement_4var"].isna().all()
    assert len(usable(study.results)) == len(study.results) - CALCULATIONS
    assert study.diverged[["replicate", "diverged_at"]].values.tolist() == [[1, 150.0]]


def test_trials_table_covers_every_folder(study):
    trials = study.trials.set_index("value")
    assert len(trials) == 8
    assert not trials.at[10.0, "finished"] and trials.at[10.0, "last_step"] == 100
    assert pd.isna(trials.at[12.0, "last_step"]) and pd.isna(trials.at[10.0, "evaluated_step"])
    assert trials["trial_id"].str.match(r"ab12c_\d{5}").all()  # from the folder name too
    assert study.name == "demo"  # the experiment folder's name


def test_resumed_and_damaged_result_files(tmp_path):
    exp = make_experiment(tmp_path, spec=None)
    trial = sorted(exp.glob("ab12c_*"))[0]
    lines = (trial / "result.json").read_text().splitlines()
    replay = json.loads(lines[1])
    replay["loss"] = -1.0  # a resumed trial re-reports step 100: the later line wins
    final = {k: v for k, v in json.loads(lines[2]).items() if k != "evaluation"}
    extra = [json.dumps(replay), json.dumps(final), '{"step": 3']  # final again, then cut off
    (trial / "result.json").write_text("\n".join([*lines, *extra]))
    study = load_results(exp)
    curve = study.curves[study.curves["trial_id"] == "ab12c_00000"]
    assert curve["step"].tolist() == [0, 100, 200]
    assert curve.loc[curve["step"] == 100, "loss"].item() == -1.0
    assert (study.results["trial_id"] == "ab12c_00000").sum() == REPLICATES * CALCULATIONS
    assert any("unreadable" in w for w in study.warnings)
    assert study.name == exp.name and study.spec_text is None


def test_params_are_read_under_trial_or_flat_in_older_experiments(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps(
        {"trial": {"family": "beta_vae", "value": 3.0}}))
    assert read_params(tmp_path) == {"family": "beta_vae", "value": 3.0}
    (tmp_path / "params.json").write_text(json.dumps({"family": "wae_uniform", "value": 1.0}))
    assert read_params(tmp_path) == {"family": "wae_uniform", "value": 1.0}
    assert read_params(tmp_path / "missing") == {}


def test_the_interfaces_columns_are_dsprites():
    assert CONTRACT_COLUMNS == (
        "trial_id", "family", "param", "value", "replicate", "seed", "calculation", "step",
        "disentanglement_4var", "disentanglement_5var", "recon_test", "recon_train")


def test_a_study_before_datasets_reads_as_dsprites(study):
    assert study.dataset == "dsprites" and study.tasks == ("4var", "5var")
    assert study.primary_task == "5var"
    assert {"disentanglement_5var", "validation_disentanglement_5var"} <= set(study.curves)


def test_a_study_with_one_task_reads_that_task_only(tmp_path):
    """A dsprites_noshape study: its one task's column in the contract's place, no 5var
    column anywhere (results, baseline, curves), the curves on its primary task."""
    one = load_results(make_experiment(tmp_path, spec=NOSHAPE_SPEC, tasks=("4var",)))
    assert (one.dataset, one.tasks, one.primary_task) == ("dsprites_noshape", ("4var",), "4var")
    fixed = contract_columns("dsprites_noshape")
    assert list(one.results.columns[: len(fixed)]) == list(fixed) == [
        *CONTRACT_COLUMNS[:8], "disentanglement_4var", "recon_test", "recon_train"]
    assert len(one.results) == 6 * REPLICATES * CALCULATIONS
    for table in (one.results, one.baseline, one.curves):
        assert not [c for c in table.columns if "5var" in c]
    assert one.curves["disentanglement_4var"].notna().any()
    assert one.results["disentanglement_4var"].notna().sum() == len(usable(one.results, "4var"))


def test_empty_and_missing_folders(tmp_path):
    study = load_results(tmp_path)
    assert study.results.empty and list(study.results.columns[:12]) == list(CONTRACT_COLUMNS)
    assert study.trials.empty and study.curves.empty
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nope")
