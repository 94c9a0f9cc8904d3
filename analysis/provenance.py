"""Provenance: what produced an experiment's numbers, so a reader can trust and repeat them.

`record_run` is called by `wae-study run` and `resume` and appends one entry to
`<experiment>/provenance.json` (a list: a resumed study may run on other versions or another
machine): software versions, the project's git commit when it runs from a checkout, the
driver's host, CPU and its native bf16 flags, and the dataset's path, size and sha256
(computed once per file and cached beside it in `<file>.sha256.json`, keyed by size and
modification time). `report_provenance` adds what the trials reported (their devices, the
precision each trained in and why, member seeds) and the metric protocols from
`study.toml`, for `summary.json` and the report's footer.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from metrics.higgins import CLASSIFIER_STEPS, PROTOCOLS
from trainables.experiment import write_atomic
from trainables.hardware import cpu_flags, cpu_name, native_bf16

FILE = "provenance.json"
PACKAGES = ("torch", "ray", "optuna", "numpy", "scikit-learn", "pandas", "h5py", "wae-study")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_KEYS = ("metrics", "higgins_protocol", "higgins_votes", "higgins_classifier_steps",
                 "eval_seed", "recon_eval_images", "uniform_code", "mmd_estimator",
                 "uniform_box", "lambda_mmd")


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the packages the numbers depend on."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(root: Path = PROJECT_ROOT) -> dict[str, Any] | None:
    """The checkout's commit and whether it had uncommitted changes; None outside git."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def dataset_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """{path, bytes, sha256} of a dataset file; the hash is cached beside the file (when the
    folder is writable) and recomputed only when the file's size or mtime changes."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    key = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = path.with_name(path.name + ".sha256.json")
    try:
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in key} == key and isinstance(cached.get("sha256"), str):
            return {"path": str(path), "bytes": stat.st_size, "sha256": cached["sha256"]}
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    try:
        write_atomic(cache, json.dumps({**key, "sha256": sha}))
    except OSError:
        pass  # a read-only data folder: the hash is simply not cached
    return {"path": str(path), "bytes": stat.st_size, "sha256": sha}


def run_entry(command: str, dataset_path: str | os.PathLike | None,
              painting_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """What the driver knows about this run or resume (`painting_path`: scream_dsprites'
    painting, whose digest no independent record pins: the report names it)."""
    return {
        "command": command,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "git": git_commit(),
        "host": socket.gethostname(),
        "driver_cpu": cpu_name(),
        "driver_cpu_native_bf16": native_bf16(cpu_flags()),  # what precision=auto looks for
        "dataset": dataset_fingerprint(dataset_path) if dataset_path else None,
        **({"painting": dataset_fingerprint(painting_path)} if painting_path else {}),
    }


def record_run(experiment_dir: Path, command: str, dataset_path: str | os.PathLike | None,
               painting_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Append this run's entry to `<experiment>/provenance.json` (atomically)."""
    entries = read_runs(experiment_dir)
    entry = run_entry(command, dataset_path, painting_path)
    write_atomic(Path(experiment_dir) / FILE, json.dumps([*entries, entry], indent=1) + "\n")
    return entry


def read_runs(experiment_dir: Path) -> list[dict[str, Any]]:
    """The recorded runs, oldest first; [] when none were recorded or the file is unreadable."""
    try:
        entries = json.loads((Path(experiment_dir) / FILE).read_text())
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def report_provenance(experiment_dir: Path, train: dict[str, Any],
                      trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the report states about where its numbers come from.

    `train` is study.toml's [train] table ({} when unknown); `trials` holds per trial
    `trial_id`, `family`, `value`, `seeds` and `devices` (what the trials reported).
    """
    runs = read_runs(experiment_dir)
    devices = sorted({d for t in trials for d in t.get("devices") or []})
    protocols = {k: train.get(k) for k in PROTOCOL_KEYS if k in train}
    if "higgins_protocol" in protocols:  # null counts: name the protocol's own
        chosen = PROTOCOLS.get(protocols["higgins_protocol"], {})
        if protocols.get("higgins_votes") is None and "votes" in chosen:
            protocols["higgins_votes"] = chosen["votes"]
        if protocols.get("higgins_classifier_steps") is None:
            protocols["higgins_classifier_steps"] = (
                CLASSIFIER_STEPS if protocols["higgins_protocol"] == "authors"
                else "scikit-learn LogisticRegression defaults")
    return {
        "runs": runs,
        "versions_now": versions() if not runs else None,  # old folders: the reporting side
        "devices": devices,
        "precisions": precisions(trials),
        "protocols": protocols,
        "member_seeds": {t["trial_id"]: t.get("seeds") for t in trials},
    }


def precisions(trials: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The trials by the precision they trained in and why ("bf16 (auto: ...)" -> ids);
    trials that did not say (older experiments) are left out."""
    grouped: dict[str, list[str]] = {}
    for trial in trials:
        if isinstance(trial.get("precision"), str):
            key = f"{trial['precision']} ({trial.get('precision_reason') or 'reason not said'})"
            grouped.setdefault(key, []).append(trial["trial_id"])
    return grouped


def footer_lines(provenance: dict[str, Any]) -> list[str]:
    """The report footer: one line per fact."""
    lines = []
    runs = provenance["runs"]
    for run in runs:
        v = run.get("versions") or {}
        git = run.get("git")
        code = "not a git checkout"
        if git:
            code = f"commit {git['commit'][:12]}" + (" (uncommitted changes)" if git["dirty"]
                                                      else "")
        lines.append(f"{run.get('command', 'run')} at {run.get('time')} on {run.get('host')}: "
                     + ", ".join(f"{k} {v[k]}" for k in ("python", *PACKAGES) if v.get(k))
                     + f"; {code}")
        for what in ("dataset", "painting"):
            data = run.get(what)
            if data:
                lines.append(f"{what} {data['path']} ({data['bytes']:,} bytes, "
                             f"sha256 {data['sha256']})")
    if not runs:
        now = provenance.get("versions_now") or {}
        lines.append("no provenance.json (an experiment from an older version): versions at "
                     "report time: " + ", ".join(f"{k} {now[k]}" for k in now if now[k]))
    lines.append("devices: " + (", ".join(provenance["devices"]) or "not reported"))
    for choice, trials in provenance.get("precisions", {}).items():
        lines.append(f"training precision {choice}: {len(trials)} trial"
                     f"{'s' if len(trials) != 1 else ''} ({', '.join(trials)})")
    protocols = provenance["protocols"]
    if protocols:
        lines.append("metric protocol: " + ", ".join(f"{k} = {v}" for k, v in protocols.items()))
    for trial, seeds in provenance["member_seeds"].items():
        lines.append(f"trial {trial} member seeds: {seeds}")
    return lines
