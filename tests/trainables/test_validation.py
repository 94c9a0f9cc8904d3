"""The validation measures: taken from the held-out images (training untouched), drawn from
their own seed, and the only measures a search decision reads. The chain is checked link by
link: the split, the evaluation's columns, then each search's decision (the Optuna
searcher's suggestions, PBT's clones) as a function of a result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_spaces import adaptive
from study import spec as specs
from trainables import data as dsdata
from trainables import objectives
from trainables.columns import validation_scores
from trainables.config import TrainConfig
from trainables.evaluate import evaluate_pack
from trainables.pack import PackTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"family": "wae_gaussian", "value": 1.0, "replicates": 2, "steps": 3, "batch_size": 8,
        "latent_dim": 3, "encoder_width": 8, "decoder_width": 8, "recon_eval_images": 64,
        "higgins_votes": 60, "higgins_classifier_steps": 30, "device": "cpu",
        "validation_fraction": 0.5}
TEST_COLUMNS = ("disentanglement_4var", "disentanglement_5var", "recon_test")
VALIDATION_SCORES = validation_scores("dsprites")


@pytest.fixture(scope="module")
def dataset(random_packed) -> dsdata.DSprites:
    return dsdata.DSprites(random_packed)


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_validation_parts_the_held_out_images_and_leaves_training_alone(dataset, fraction):
    before = dataset.split(7, 0.1)
    after = dataset.split(7, 0.1, fraction)
    assert np.array_equal(after.train, before.train)  # the models train on the same images
    assert not np.intersect1d(after.validation, after.test).size
    assert np.array_equal(np.union1d(after.validation, after.test), before.test)
    assert len(after.validation) == round(len(before.test) * fraction)
    assert len(before.validation) == 0  # no validation: the test images as they were


@pytest.fixture(scope="module")
def trained(dataset):
    cfg = TrainConfig.from_dict(TINY)
    trainer = PackTrainer(cfg, dataset.packed, dataset.split(cfg.split_seed).train)
    for _ in range(cfg.steps):
        trainer.train_step()
    return trainer.model


def rows_with(trained, dataset, **changes) -> list[dict]:
    cfg = TrainConfig.from_dict({**TINY, **changes})
    split = dataset.split(cfg.split_seed, cfg.test_fraction, cfg.validation_fraction)
    return evaluate_pack(trained, dataset, split, cfg, cfg.steps, [-1, -1])


def columns(rows: list[dict], names) -> list[tuple]:
    return [tuple(row[name] for name in names) for row in rows]


def test_test_draws_do_not_touch_the_validation_measures_and_vice_versa(trained, dataset):
    base = rows_with(trained, dataset)
    assert all(math.isfinite(row[c]) for row in base for c in VALIDATION_SCORES)
    other_test = rows_with(trained, dataset, eval_seed=5)  # other test votes and images
    assert columns(other_test, VALIDATION_SCORES) == columns(base, VALIDATION_SCORES)
    assert columns(other_test, TEST_COLUMNS) != columns(base, TEST_COLUMNS)
    other_validation = rows_with(trained, dataset, validation_seed=9)
    assert columns(other_validation, TEST_COLUMNS) == columns(base, TEST_COLUMNS)
    assert columns(other_validation, VALIDATION_SCORES) != columns(base, VALIDATION_SCORES)


def test_no_validation_no_validation_columns(trained, dataset):
    rows = rows_with(trained, dataset, validation_fraction=0.0)
    assert not set(VALIDATION_SCORES) & set(rows[0])


# ---- the searches' decisions read the validation measures only ------------------------------
def result(test: tuple[float, float], validation: tuple[float, float]) -> dict[str, float]:
    return {"disentanglement_5var": test[0], "recon_test": test[1],
            "validation_disentanglement_5var": validation[0], "validation_recon": validation[1]}


@pytest.mark.parametrize("objective", ["constrained", "weighted"])
def test_scores_follow_the_selected_measures(objective):
    table = {"objective": objective, "max_recon_test": 100.0, "recon_scale": 1000.0}
    a, b = result((0.9, 50.0), (0.3, 300.0)), result((0.1, 900.0), (0.3, 300.0))
    on_validation = {**table, "select_on": "validation"}
    assert objectives.score_for(a, on_validation, "5var") == objectives.score_for(
        b, on_validation, "5var")
    on_test = {**table, "select_on": "test"}
    assert objectives.score_for(a, on_test, "5var") != objectives.score_for(b, on_test, "5var")


def suggestions(tmp_path, name: str, results: list[dict], objective: str,
                select_on: str) -> list[float]:
    """The values a seeded Optuna searcher suggests, told `results` one after another (past
    TPE's 10 random start-up trials, so the told values steer it)."""
    table = {**specs.load("quick-adaptive")["adaptive"], "objective": objective,
             "select_on": select_on, "max_recon_test": 400.0}
    study = {"seed": 0, "replicates": 1, "seeds": "independent"}
    folder = tmp_path / name
    folder.mkdir()
    searcher = adaptive.make_searcher(table, study, folder, "5var")
    searcher.set_search_properties(None, None, {})
    values = []
    for i, told in enumerate(results):
        values.append(searcher.suggest(f"t{i}")["trial"]["value"])
        searcher.on_trial_complete(f"t{i}", told)
    return values


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["pareto", "constrained"])
def test_optuna_suggests_alike_whatever_the_test_measures_and_not_whatever_validation(
        tmp_path, objective):
    rng = np.random.default_rng(0)
    draw = [(float(rng.uniform(0.2, 0.9)), float(rng.uniform(50, 500))) for _ in range(28)]
    test, validation = draw[:14], draw[14:]

    def run(name: str, tests: list, validations: list, select_on: str) -> list[float]:
        told = [result(t, v) for t, v in zip(tests, validations, strict=True)]
        return suggestions(tmp_path, name, told, objective, select_on)

    base = run("a", test, validation, "validation")
    assert run("b", test[::-1], validation, "validation") == base
    assert run("c", test, validation[::-1], "validation") != base
    # the old selection is steered by the test measures
    assert run("d", test[::-1], validation, "test") != run("e", test, validation, "test")


def test_a_search_written_before_validation_resumes_selecting_on_test(tmp_path):
    """An experiment's study.toml without select_on (written before it existed) selects as it
    did then: on the test measures, with no validation images."""
    text = specs.dumps(specs.load("quick-pbt"))
    old = "\n".join(line for line in text.splitlines()
                    if not line.startswith(("select_on", "validation_fraction", "exploit")))
    (tmp_path / "study.toml").write_text(old)
    resolved = specs.experiment_spec(tmp_path)
    assert resolved["pbt"]["select_on"] == "test"
    assert resolved["train"]["validation_fraction"] == 0.0
    assert specs.load("quick-pbt")["pbt"]["select_on"] == "validation"  # a new study
