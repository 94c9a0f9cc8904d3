"""Read an experiment folder (Ray Tune's trial folders + our reports) into tidy tables.

Everything downstream (aggregation, fronts, figures, the report) works on these tables, so a
study can be re-analysed from its folder alone, finished or not. Unreadable pieces (a trial
still writing its last line, a missing ``result.json``) are skipped and listed in
``StudyResults.warnings`` rather than raised: a report of a half-run study must still work.

Diverged members keep their rows (``diverged=True``); :func:`usable` is the one place that
drops them (and rows with a missing score) before aggregation and Pareto fronts.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrics.higgins import CLASSIFIER_STEPS
from trainables import experiment
from trainables.columns import (
    ROW_KEYS,
    VALIDATION,
    VALIDATION_RECON,
    contract_scores,
    dataset_of,
    disentanglement,
    primary_task,
    study_primary_task,
    study_tasks,
)
from trainables.config import FAMILIES, PARAM_OF
from trainables.result_line import ResultLine

# What identifies a row of results.csv: the interface's fixed columns before the scores.
ID_COLUMNS: tuple[str, ...] = (
    "trial_id", "family", "param", "value", "replicate", "seed", "calculation", "step")
# Row keys that identify a row rather than measure something.
_ROW_KEYS = frozenset(ROW_KEYS)
_TRIAL_COLUMNS = (
    "trial_id", "family", "param", "value", "replicates", "steps", "last_step",
    "evaluated_step", "finished", "n_diverged", "seeds", "devices", "precision",
    "precision_reason", "path",
)
# What recon_test / recon_train decode: one posterior sample per image (the seed's measure),
# or, in experiments written before the sampled measure existed, the posterior mean.
RECON_SAMPLE, RECON_MEAN = "posterior sample", "posterior mean"
_RESCORED = re.compile(r"^disentanglement_(.+)_c(\d+)$")  # `evaluate`'s Higgins columns


def contract_columns(dataset: str) -> tuple[str, ...]:
    """results.csv's fixed columns for a study on `dataset` (the interface's, for dSprites)."""
    return (*ID_COLUMNS, *contract_scores(dataset))


def _curve_columns(task: str) -> tuple[str, ...]:
    """The curves' columns: one row per report. `value` is the value trained with at that step
    (PBT changes it; a clone's first report names its donor in `cloned_from`); the scores,
    of the study's primary `task`, are the latest evaluation's means, made at `eval_step` (an
    interim evaluation before the last step)."""
    return ("trial_id", "family", "value", "step", "loss", "recon", "n_diverged",
            "cloned_from", "cloned_at", "eval_step", disentanglement(task), "recon_test",
            VALIDATION + disentanglement(task), VALIDATION_RECON, "timestamp")


@dataclass
class StudyResults:
    """One experiment folder, read: tidy tables plus what could not be read."""

    experiment_dir: Path
    name: str
    spec_text: str | None
    spec: dict[str, Any]  # study.toml parsed ({} when missing or unreadable)
    results: pd.DataFrame  # latest evaluation after step 0, one row per (trial, replicate, calc)
    baseline: pd.DataFrame  # step-0 (untrained encoder) evaluation rows, same columns
    curves: pd.DataFrame  # one row per report: trial_id, family, value, step, loss, recon, ...
    trials: pd.DataFrame  # one row per trial folder
    diverged: pd.DataFrame  # one row per diverged member
    warnings: list[str] = field(default_factory=list)
    # the Higgins classifier budget `results` holds when `evaluate --metrics higgins`
    # re-scored every model at more steps than it trained with (None: the trained scores)
    higgins_rescored_at: int | None = None

    @property
    def dataset(self) -> str:
        """The dataset the study trained on (dSprites when its study.toml does not say)."""
        return dataset_of(self.spec)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The study's Higgins tasks, in column order (`trainables.columns.study_tasks`)."""
        return study_tasks(self.spec)

    @property
    def primary_task(self) -> str:
        """The task over all the dataset's latent factors, the searches' (dSprites: 5var)."""
        return study_primary_task(self.spec)

    @property
    def recon_measure(self) -> str:
        """What `recon_test`/`recon_train` decode here: RECON_SAMPLE when every evaluation
        has the `recon_test_mean` column beside them (the sampled measure), RECON_MEAN for
        older experiments, "mixed" when both occur."""
        if "recon_test_mean" not in self.results.columns or not len(self.results):
            return RECON_MEAN if len(self.results) else RECON_SAMPLE
        has_mean = self.results["recon_test_mean"].notna() | self.results["diverged"]
        return RECON_SAMPLE if has_mean.all() else RECON_MEAN if not has_mean.any() else "mixed"


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Measured columns of an evaluation table, in its order (`load_results`'s: the interface's
    fixed scores first, then extras)."""
    return [c for c in table.columns if c not in ID_COLUMNS and c != "diverged"]


def families_in(table: pd.DataFrame) -> list[str]:
    """Families present in a table, in the interface's order (unknown ones last, sorted)."""
    present = set(table["family"])
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def usable(table: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """Rows that may enter aggregation and fronts: healthy members with finite scores."""
    needed = ["recon_test", f"disentanglement_{task}"] if task else ["recon_test"]
    keep = ~table["diverged"].astype(bool)
    for col in needed:
        keep &= np.isfinite(pd.to_numeric(table[col], errors="coerce"))
    return table[keep]


def load_results(experiment_dir: str | Path) -> StudyResults:
    """Read every trial folder of an experiment into :class:`StudyResults`."""
    root = Path(experiment_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"experiment folder {root} does not exist")
    warnings: list[str] = []
    spec_text, spec = _read_spec(root, warnings)
    dataset, tasks = dataset_of(spec), study_tasks(spec)
    finals, baselines, curves, trials, diverged = [], [], [], [], []
    for record in experiment.read_trials(root, warnings):
        trial = _read_trial(record, warnings, dataset)
        trials.append(trial.summary)
        curves.extend(trial.curve)
        finals.extend(trial.final_rows)
        baselines.extend(trial.baseline_rows)
        diverged.extend(trial.diverged)
    results = _evaluation_table(finals, dataset)
    trained = trained_budget(spec)
    rescored = rescored_budget(results, trained, tasks)
    return StudyResults(
        experiment_dir=root,
        name=root.name,  # the experiment's name (`run --name`, else the spec's + a time)
        spec_text=spec_text,
        spec=spec,
        results=results if rescored is None else higgins_at(results, rescored, trained, tasks),
        higgins_rescored_at=rescored,
        baseline=_evaluation_table(baselines, dataset),
        curves=pd.DataFrame(curves, columns=list(_curve_columns(primary_task(dataset)))),
        trials=pd.DataFrame(trials, columns=list(_TRIAL_COLUMNS)).astype(
            {"last_step": "Int64", "evaluated_step": "Int64", "n_diverged": int}
        ),
        diverged=pd.DataFrame(
            diverged, columns=["trial_id", "family", "value", "replicate", "seed", "diverged_at"]
        ),
        warnings=warnings,
    )


def trained_budget(spec: dict[str, Any]) -> int | None:
    """The Higgins classifier steps the study trained with (None: not the authors' protocol,
    whose classifier has no step budget)."""
    train = spec.get("train", {})
    if train.get("higgins_protocol", "authors") != "authors":
        return None
    return int(train.get("higgins_classifier_steps") or CLASSIFIER_STEPS)


def rescored_budget(results: pd.DataFrame, trained: int | None,
                    tasks: tuple[str, ...]) -> int | None:
    """The largest classifier budget above `trained` at which `evaluate --metrics higgins`
    re-scored every task of `tasks` of every model with a trained score; None when there is
    none."""
    if trained is None:
        return None
    found: dict[int, set[str]] = {}
    for column in results.columns:
        match = _RESCORED.match(column)
        if match and int(match[2]) > trained:
            found.setdefault(int(match[2]), set()).add(match[1])
    for steps in sorted(found, reverse=True):
        if found[steps] == set(tasks) and all(
                results[f"disentanglement_{t}_c{steps}"].notna()[
                    results[f"disentanglement_{t}"].notna()].all() for t in tasks):
            return steps
    return None


def higgins_at(results: pd.DataFrame, steps: int, trained: int,
               tasks: tuple[str, ...]) -> pd.DataFrame:
    """The table with the Higgins scores of `tasks` read at `steps` classifier steps; the
    trained scores move to `disentanglement_<task>_c<trained>` (nothing is dropped)."""
    out = results.copy()
    for task in tasks:
        column = f"disentanglement_{task}"
        if f"{column}_c{trained}" not in out.columns:
            out[f"{column}_c{trained}"] = results[column]
        out[column] = results[f"{column}_c{steps}"]
    return out


def _read_spec(root: Path, warnings: list[str]) -> tuple[str | None, dict[str, Any]]:
    """study.toml's text and its parsed tables ({} when missing or unparsable)."""
    try:
        text = experiment.read_study_text(root)
    except OSError:
        return None, {}
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        warnings.append(f"study.toml could not be parsed ({err}); shown as text")
        return text, {}


@dataclass
class _Trial:
    summary: dict[str, Any]
    curve: list[dict[str, Any]]
    final_rows: list[dict[str, Any]]
    baseline_rows: list[dict[str, Any]]
    diverged: list[dict[str, Any]]


def _read_trial(record: experiment.Trial, warnings: list[str], dataset: str) -> _Trial:
    """One trial folder's rows (the columns of `dataset`); its curve holds the scores of the
    primary task."""
    task = primary_task(dataset)
    trial_dir, config, reports = record.path, record.config, record.lines
    # A resumed trial may re-report steps (a restored final checkpoint is reported again
    # without its evaluation): per step the last line wins, the last evaluation separately.
    by_step = {line.step: line for line in reports}
    evals = {line.step: line for line in reports if line.evaluation is not None}
    ordered = [by_step[s] for s in sorted(by_step)]
    evaluated = [evals[s] for s in sorted(evals)]
    first = reports[0] if reports else None
    latest = next((line for line in reversed(evaluated) if line.step > 0), None)
    family = (first and first.family) or config.get("family") or "unknown"
    param = (first and first.param) or config.get("param") or PARAM_OF.get(family, "value")
    # the value the latest evaluation's models trained with last (PBT perturbs it)
    source = latest or first
    reported = source.value if source else math.nan
    value = reported if math.isfinite(reported) else _number(config.get("value"))
    trial_id = record.trial_id
    ident = {"trial_id": trial_id, "family": family, "param": param, "value": value}

    step0 = next((line for line in evaluated if line.step == 0), None)
    diverged = _diverged_members(ident, ordered[-1] if ordered else None, latest)
    summary = {
        **ident,
        "replicates": config.get("replicates"),
        "steps": _number(config.get("steps")),
        "last_step": record.last_step,
        "evaluated_step": latest.step if latest else None,
        "finished": record.finished,
        "n_diverged": len(diverged),
        "seeds": first.seeds if first else None,
        "devices": sorted({line.device_name or line.device for line in reports
                           if line.device_name or line.device}),
        # what it trained in, and why (the latest report saying; None before this was reported)
        **next(({"precision": line.precision, "precision_reason": line.precision_reason}
                for line in reversed(ordered) if line.precision),
               {"precision": None, "precision_reason": None}),
        "path": str(trial_dir),
    }
    curve = [
        {
            "trial_id": trial_id,
            "family": family,
            "value": line.value if math.isfinite(line.value) else value,
            "step": line.step,
            "loss": line.loss,
            "recon": line.recon,
            "n_diverged": float(line.n_diverged),
            "cloned_from": line.cloned_from,
            "cloned_at": _number(line.cloned_at),
            "eval_step": float(line.eval_step),
            disentanglement(task): line.score(disentanglement(task)),
            "recon_test": line.score("recon_test"),
            VALIDATION + disentanglement(task): line.score(VALIDATION + disentanglement(task)),
            VALIDATION_RECON: line.score(VALIDATION_RECON),
            "timestamp": _number(line.timestamp),
        }
        for line in ordered
    ]
    extra = _read_extra(trial_dir, warnings, contract_columns(dataset))
    return _Trial(
        summary=summary,
        curve=curve,
        final_rows=_merge_extra(_rows(ident, latest, contract_scores(dataset)), extra),
        baseline_rows=_merge_extra(_rows(ident, step0, contract_scores(dataset)), extra),
        diverged=diverged,
    )


def _read_extra(trial_dir: Path, warnings: list[str],
                fixed: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """Columns of ``extra_metrics.json`` (re-scored checkpoints) by (replicate, step,
    calculation), the `fixed` columns left out; calculation None in rows written before
    calculations were kept."""
    path = trial_dir / experiment.EXTRA_FILE
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        warnings.append(f"{trial_dir.name}/{experiment.EXTRA_FILE} unreadable ({err}), skipped")
        return {}
    extra = {}
    for raw in rows if isinstance(rows, list) else []:
        if isinstance(raw, dict) and isinstance(raw.get("replicate"), int) and isinstance(
            raw.get("step"), int
        ):
            calculation = raw.get("calculation")
            extra[(raw["replicate"], raw["step"],
                   calculation if isinstance(calculation, int) else None)] = {
                key: _number(val) for key, val in raw.items()
                if key not in _ROW_KEYS and key not in fixed and _is_scalar(val)
            }
    return extra


def _merge_extra(
    rows: list[dict[str, Any]], extra: dict[tuple, dict[str, Any]]
) -> list[dict[str, Any]]:
    for row in rows:
        member = (row["replicate"], row["step"])
        row.update(extra.get((*member, None), {}))
        row.update(extra.get((*member, row["calculation"]), {}))
    return rows


def _number(value: Any) -> float:
    """A float, NaN for anything missing or non-numeric (JSON null, strings, lists)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _rows(ident: dict[str, Any], line: ResultLine | None,
          scores: tuple[str, ...]) -> list[dict[str, Any]]:
    """The evaluation rows of a report (none without one); `scores`: the study's fixed ones."""
    if line is None:
        return []
    rows = []
    for raw in line.evaluation or []:
        row = {**ident, "step": int(raw.get("step", line.step))}
        for key in ("replicate", "seed", "calculation"):
            row[key] = raw.get(key)
        row["diverged"] = bool(raw.get("diverged", False))
        for key, val in raw.items():
            if key not in _ROW_KEYS and (key in scores or _is_scalar(val)):
                row[key] = _number(val)
        rows.append(row)
    return rows


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, int | float) and not isinstance(value, bool)


def _diverged_members(
    ident: dict[str, Any], last: ResultLine | None, latest: ResultLine | None
) -> list[dict[str, Any]]:
    """Members flagged in the last report's ``diverged_at`` or in the latest evaluation."""
    seeds = {}
    flagged: dict[int, float] = {}
    for raw in (latest.evaluation or []) if latest else []:
        if raw.get("replicate") is not None:
            seeds[int(raw["replicate"])] = raw.get("seed")
            if raw.get("diverged"):
                flagged.setdefault(int(raw["replicate"]), math.nan)
    for member, at in enumerate(last.diverged_at if last else []):
        if at >= 0:
            flagged[member] = float(at)
    return [
        {
            "trial_id": ident["trial_id"],
            "family": ident["family"],
            "value": ident["value"],
            "replicate": member,
            "seed": seeds.get(member),
            "diverged_at": at,
        }
        for member, at in sorted(flagged.items())
    ]


def _evaluation_table(rows: list[dict[str, Any]], dataset: str) -> pd.DataFrame:
    """The fixed columns of a study on `dataset`, then ``diverged``, then extra metrics in a
    stable order."""
    table = pd.DataFrame(rows)
    fixed = contract_columns(dataset)
    extras = sorted(c for c in table.columns if c not in fixed and c != "diverged")
    columns = [*fixed, "diverged", *extras]
    table = table.reindex(columns=columns)
    table["diverged"] = table["diverged"].fillna(False).astype(bool)
    for col in ("replicate", "calculation", "step"):
        table[col] = table[col].astype("Int64")
    table["seed"] = table["seed"].astype("Int64")
    for col in ("value", *contract_scores(dataset), *extras):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table.sort_values(
        ["family", "value", "trial_id", "replicate", "calculation"], kind="mergesort"
    ).reset_index(drop=True)
