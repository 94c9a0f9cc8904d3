"""`wae-study evaluate`: re-score a study's final checkpoints with more metrics, no retraining.

For each trial folder, the newest checkpoint that loads and is at the trial's last step is
scored with the requested metrics (`higgins` re-scores every Higgins task of the study's
dataset with the study's protocol and `classifier_steps` of the authors' classifier, by default
their full 100,000, into the columns `disentanglement_<task>_c<steps>` (dSprites:
`disentanglement_4var_c<steps>` / `_5var_c<steps>`), so a study trained with a
cut classifier can be re-scored at full budget beside its own scores; once every model has
been, the report reads its Higgins scores at that budget and says so): every healthy member
of the pack is encoded on one shared set of images drawn from the trial's `eval_seed`
(`trainables.evaluate.score_members`, as during training), diverged members get nulls. The
rows, one per (member, metric calculation), go to `<trial>/extra_metrics.json` (merged with
earlier runs: new columns added, same columns overwritten), which
`analysis.results.load_results` joins onto the results table; then the report is rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from metrics.higgins import CLASSIFIER_STEPS
from study import spec as specs
from study.errors import BadInput
from trainables import experiment
from trainables.config import METRIC_NAMES as VALID


def evaluate(experiment_dir: Path, metrics_text: str, data_path: Path | None,
             classifier_steps: int = CLASSIFIER_STEPS) -> int:
    """The command: check the input, load the dataset, score, rewrite the report, print its
    answer lines and its index.html as the last line."""
    from study.report_command import print_report
    from trainables import data as dsdata

    names = parse_metrics(metrics_text)
    if classifier_steps < 1:
        raise BadInput(f"--classifier-steps must be >= 1, got {classifier_steps}")
    path, dataset_name = specs.data_for(experiment_dir, data_path)
    dataset = dsdata.load(path, dataset=dataset_name)
    print_report(evaluate_experiment(experiment_dir, names, dataset, classifier_steps).parent)
    return 0


def parse_metrics(text: str) -> list[str]:
    """Comma-separated metric names, checked against the valid ones, each once, in order."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise BadInput(f"--metrics is empty; give a comma-separated list of {', '.join(VALID)}")
    for name in names:
        if name not in VALID:
            raise BadInput(f"unknown metric '{name}' in --metrics; valid: {', '.join(VALID)}")
    return names


def evaluate_experiment(experiment_dir: str | Path, metrics: list[str], data: Any,
                        classifier_steps: int = CLASSIFIER_STEPS) -> Path:
    """Score every finished trial's final checkpoint with `metrics` on `data` (a
    `trainables.data.DSprites`), merge the rows into each `extra_metrics.json`, rewrite the
    report and return its index.html. Unfinished or unreadable trials are skipped with a note
    on stderr."""
    from analysis.report import write_report

    root = Path(experiment_dir)
    metrics = parse_metrics(",".join(metrics))
    specs.spec_path(root)
    for trial_dir in experiment.trial_dirs(root):
        found = final_checkpoint(trial_dir)
        if isinstance(found, str):
            _note(f"{trial_dir.name}: skipped, {found}")
            continue
        path, payload = found
        rows = score_checkpoint(payload, metrics, data, classifier_steps)
        merge_rows(trial_dir / experiment.EXTRA_FILE, rows)
        _note(f"{trial_dir.name}: {', '.join(metrics)} at step {payload['step']} "
              f"({path.name})")
    return write_report(root, data=data) / "index.html"


def final_checkpoint(trial_dir: Path) -> tuple[Path, dict] | str:
    """The newest checkpoint that loads, with its payload, if it is at the trial's last step;
    otherwise why there is none. Unusable checkpoints are noted on stderr."""
    from trainables.checkpoint import newest_loadable  # torch: only when scoring

    found = newest_loadable(trial_dir)
    for path, reason in found.skipped:
        _note(f"{trial_dir.name}: {path.name} unusable ({reason})")
    if found.path is None:
        return "no checkpoint loads" if found.skipped else "no checkpoint"
    payload = found.payload
    steps = payload["config"]["steps"]  # a resume never changes it (_check_resumable)
    if experiment.reached_last_step(payload.get("step"), steps):
        return found.path, payload
    return f"not finished (checkpoint {found.path.name} is at step {payload.get('step')} of " \
           f"{steps})"


def score_checkpoint(payload: dict, metrics: list[str], data: Any,
                     classifier_steps: int = CLASSIFIER_STEPS) -> list[dict[str, Any]]:
    """One row per (member, metric calculation), `{replicate, seed, step, calculation,
    <column>...}`, as the trainable's evaluation rows; `calculation` null when the metrics
    have one calculation (the row holds for all of the member's); one row of nulls for a
    diverged member."""
    import torch

    from trainables.checkpoint import pack_from_payload
    from trainables.evaluate import calculations, higgins_columns, score_members

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, cfg = pack_from_payload(payload, device)
    model.eval()
    columns = {name: name for name in metrics if name != "higgins"}  # suite name -> column
    if "higgins" in metrics:
        columns.update({name: f"{column}_c{classifier_steps}"
                        for name, column in higgins_columns(cfg.dataset).items()})
        cfg = dataclasses.replace(cfg, metrics=list(dict.fromkeys([*cfg.metrics, "higgins"])),
                                  higgins_classifier_steps=classifier_steps)
    healthy = [k for k, at in enumerate(payload["diverged_at"]) if at < 0]
    results = score_members(model, data, cfg, list(columns), healthy)
    rows = []
    for k, seed in enumerate(cfg.member_seeds):
        base = {"replicate": k, "seed": seed, "step": int(payload["step"])}
        if k not in healthy:
            rows.append({**base, "calculation": None, **dict.fromkeys(columns.values())})
            continue
        member = {columns[name]: result for name, result in results[healthy.index(k)].items()}
        per = calculations(member)  # one calculation: it holds for every row of the member
        rows += [{**base, "calculation": c if len(per) > 1 else None,
                  **{col: _finite(v) for col, v in values.items()}}
                 for c, values in enumerate(per)]
    return rows


def merge_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Merge rows into the JSON list at `path` by (replicate, step, calculation), atomically
    (rows written before calculations were kept have none)."""
    merged: dict[tuple[int, int, int | None], dict[str, Any]] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            _note(f"{path} unreadable ({err}): rewritten")
            old = []
        for row in old if isinstance(old, list) else []:
            if isinstance(row, dict) and all(isinstance(row.get(key), int)
                                             for key in ("replicate", "step")):
                merged[_row_key(row)] = row
    for row in rows:
        merged.setdefault(_row_key(row), {}).update(row)
    ordered = [merged[key] for key in sorted(merged, key=lambda k: (k[1], k[0], k[2] or 0))]
    experiment.write_atomic(path, json.dumps(ordered, indent=1) + "\n")


def _row_key(row: dict[str, Any]) -> tuple[int, int, int | None]:
    return row["replicate"], row["step"], row.get("calculation")


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _note(text: str) -> None:
    print(f"wae-study: {text}", file=sys.stderr)
