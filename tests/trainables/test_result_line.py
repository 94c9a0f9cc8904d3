"""`trainables.result_line`: the one definition of a report, written by the trainable and
read by results, progress and status; and the columns it carries, per dataset
(`trainables.columns`)."""

from __future__ import annotations

import json
import math

import pytest

from trainables import columns
from trainables.datasets import DATASETS
from trainables.result_line import ResultLine

LINE = ResultLine(step=250, family="wae_gaussian", param="lambda1", value=2.0, loss=130.5,
                  recon=120.25, member_loss=[130.0, 131.0], diverged_at=[-1, 200],
                  n_diverged=1, seeds=[11, 12], node_id="n", device="cpu",
                  device_name="CPU: x",
                  scores={**dict.fromkeys(columns.scores("dsprites"), 0.5), "mig": 0.25},
                  eval_step=250, evaluation=[{"replicate": 0, "calculation": 0}],
                  cloned_from="abcde_00001", cloned_at=200)


def test_a_report_reads_back_as_written_with_tunes_own_keys():
    # as result.json holds it: the report, through JSON, with what Tune adds
    written = json.loads(json.dumps({**LINE.to_report(), "trial_id": "abcde_00000",
                                     "time_total_s": 12.5, "timestamp": 1.7e9, "pid": 3}))
    assert written["disentanglement_5var"] == 0.5 and written["mig"] == 0.25  # flat scores
    read = ResultLine.read(written)
    assert read == ResultLine(**{**LINE.__dict__, "trial_id": "abcde_00000",
                                 "time_total_s": 12.5, "timestamp": 1.7e9})


def test_what_a_report_says_once_is_absent_otherwise():
    plain = ResultLine(step=10).to_report()
    assert not {"evaluation", "cloned_from", "cloned_at"} & set(plain)
    assert ResultLine.read(plain).evaluation is None


def test_older_and_damaged_lines_read_with_gaps_filled():
    read = ResultLine.read({"step": 5.0, "loss": "x", "diverged_at": None, "seeds": "?",
                            "evaluation": [{"replicate": 0}, 3], "disentanglement_5var": None})
    assert read.step == 5 and math.isnan(read.loss) and read.diverged_at == []
    assert read.seeds is None and read.evaluation == [{"replicate": 0}]
    assert math.isnan(read.score("disentanglement_5var")) and read.eval_step == -1
    assert ResultLine.read({"loss": 1.0}) is None  # no step: not a report
    assert ResultLine.read({"step": True}) is None


def test_a_report_of_another_dataset_reads_back_its_own_tasks():
    """A dsprites_noshape trial reports its one task (and its validation measures); the
    reader keeps every dataset's scores and nothing that is not one."""
    measured = (*columns.scores("dsprites_noshape"),
                *columns.validation_scores("dsprites_noshape"))
    line = ResultLine(step=10, scores=dict.fromkeys(measured, 0.5))
    raw = {**line.to_report(), "disentanglement_6var": 0.25, "shape": 1.0}
    read = ResultLine.read(raw)
    assert read.scores == {**dict.fromkeys(measured, 0.5), "disentanglement_6var": 0.25}
    assert math.isnan(read.score("disentanglement_5var"))


# ---- the columns, per dataset -----------------------------------------------------------------
def test_dsprites_keeps_the_interfaces_columns():
    assert columns.tasks("dsprites") == ("4var", "5var")
    assert columns.contract_scores("dsprites") == (
        "disentanglement_4var", "disentanglement_5var", "recon_test", "recon_train")
    assert columns.scores("dsprites")[4:] == ("recon_test_mean", "recon_train_mean")
    assert columns.validation_scores("dsprites") == (
        "validation_disentanglement_4var", "validation_disentanglement_5var",
        "validation_recon")
    assert columns.primary_task("dsprites") == "5var"


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_has_a_column_per_task_and_its_primary_task_last(name):
    """Columns follow the registry's tasks, fewest factors first; the primary task (the one
    over every latent factor, the registry's first) is the last column."""
    dataset = DATASETS[name]
    tasks = columns.tasks(name)
    assert set(tasks) == set(dataset.tasks)
    assert [len(dataset.tasks[t]) for t in tasks] == sorted(len(f) for f in dataset.tasks.values())
    primary = columns.primary_task(name)
    assert tasks[-1] == primary and set(dataset.tasks[primary]) == set(dataset.latent_factors)
    assert columns.contract_scores(name) == (
        *(f"disentanglement_{t}" for t in tasks), "recon_test", "recon_train")


def test_dsprites_noshape_has_its_one_task_only():
    assert columns.tasks("dsprites_noshape") == ("4var",)
    assert columns.primary_task("dsprites_noshape") == "4var"
    assert columns.contract_scores("dsprites_noshape") == (
        "disentanglement_4var", "recon_test", "recon_train")


def test_a_studys_tasks_are_its_datasets_and_an_old_study_is_dsprites():
    assert columns.study_tasks({"train": {"dataset": "dsprites_noshape"}}) == ("4var",)
    assert columns.study_tasks({"train": {"steps": 10}}) == ("4var", "5var")  # before datasets
    assert columns.study_tasks({}) == ("4var", "5var")  # no (readable) study.toml
    assert columns.study_primary_task({"train": {"dataset": "dsprites_noshape"}}) == "4var"
    assert columns.study_primary_task({}) == "5var"


def test_task_labels():
    assert (columns.task_short("5var"), columns.task_title("4var")) == (
        "5-var", "4-variable task")
    assert (columns.task_short("odd"), columns.task_title("odd")) == ("odd", "odd task")
