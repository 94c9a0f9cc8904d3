"""The columns of one evaluation row: what the trainable reports and results.csv holds.

A row is one (trial, replicate, metric calculation). `ROW_KEYS` identify it; `scores(dataset)`
are measured in every evaluation, the first (`contract_scores`) being the interface's fixed
columns: `disentanglement_<task>` for each Higgins task of the dataset
(`trainables.datasets`; dSprites: `disentanglement_4var`, `disentanglement_5var`), then
`recon_test`, `recon_train`; extra metrics (MIG, DCI, ...) add columns of their own names.

The tasks are a dataset's (`tasks`), a study's those of the dataset its study.toml names
(`study_tasks`, the one definition every reader of a study uses); its primary task
(`primary_task`, `study_primary_task`), over all of the dataset's latent factors, is the one
the searches select on. Nothing here imports
more than the dataset registry: the command line's light commands read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainables.datasets import DATASETS, DSPRITES

ROW_KEYS: tuple[str, ...] = ("replicate", "seed", "calculation", "step", "diverged")
DISENTANGLEMENT = "disentanglement_"  # + a task: that Higgins task's score
# recon_<split>: the decoder on one posterior sample per image (the authors' logged measure,
# the seed's 94.0 / 156.1 nats); recon_<split>_mean: on the posterior mean (lower).
RECON_SCORES: tuple[str, ...] = ("recon_test", "recon_train")
MEAN_RECON_SCORES: tuple[str, ...] = ("recon_test_mean", "recon_train_mean")
# The validation measures (a config's `validation_fraction` > 0), the only ones a search reads
# (`trainables.objectives`): Higgins votes from `validation_seed`, one posterior sample per
# validation image. Named apart so no reader takes them for the test measures the report states.
VALIDATION = "validation_"
VALIDATION_RECON = VALIDATION + "recon"


def dataset_of(spec: Mapping[str, Any]) -> str:
    """The dataset a study trains on: its spec's `train.dataset`; dSprites for a study.toml
    written before the setting existed (or an unreadable one, parsed as {})."""
    return (spec.get("train") or {}).get("dataset", DSPRITES.name)


def tasks(dataset: str) -> tuple[str, ...]:
    """A dataset's Higgins tasks in column order: fewest factors first, so the primary task
    comes last (dSprites: 4var, 5var, as its columns always stood)."""
    declared = DATASETS[dataset].tasks
    return tuple(sorted(declared, key=lambda task: len(declared[task])))


def study_tasks(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The Higgins tasks of a study (its dataset's, `dataset_of`), in column order."""
    return tasks(dataset_of(spec))


def primary_task(dataset: str) -> str:
    """The dataset's task over all its latent factors, the first its registry entry names
    (dSprites: 5var): what the searches select on."""
    return next(iter(DATASETS[dataset].tasks))


def study_primary_task(spec: Mapping[str, Any]) -> str:
    """The primary task of a study (its dataset's, `dataset_of`)."""
    return primary_task(dataset_of(spec))


def disentanglement(task: str) -> str:
    """The column of a Higgins task's score."""
    return DISENTANGLEMENT + task


def contract_scores(dataset: str) -> tuple[str, ...]:
    """The interface's fixed scores: each task's disentanglement, then the sampled recon."""
    return (*map(disentanglement, tasks(dataset)), *RECON_SCORES)


def scores(dataset: str) -> tuple[str, ...]:
    """Every score each evaluation of a trial on `dataset` measures."""
    return (*contract_scores(dataset), *MEAN_RECON_SCORES)


def validation_scores(dataset: str) -> tuple[str, ...]:
    """The validation measures of a config that validates: each task's, then the recon."""
    return (*(VALIDATION + disentanglement(task) for task in tasks(dataset)), VALIDATION_RECON)


def is_score(key: str) -> bool:
    """Whether a report's key is one of `scores`, of any dataset."""
    return key.startswith(DISENTANGLEMENT) or key in (*RECON_SCORES, *MEAN_RECON_SCORES)


def is_validation_score(key: str) -> bool:
    """Whether a report's key is one of `validation_scores`, of any dataset."""
    return key == VALIDATION_RECON or key.startswith(VALIDATION + DISENTANGLEMENT)


def task_short(task: str) -> str:
    """A task as a progress line or a table names it: "5var" -> "5-var" (the registry names a
    task for how many factors it votes on), another name as it is."""
    count = task.removesuffix("var")
    return f"{count}-var" if count.isdigit() else task


def task_title(task: str) -> str:
    """A task as a heading names it: "5var" -> "5-variable task"."""
    count = task.removesuffix("var")
    return f"{count}-variable task" if count.isdigit() else f"{task} task"
