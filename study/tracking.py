"""Where researchers keep their runs: MLflow or Weights & Biases, one run per trial.

`[tracking] backend = "mlflow"` (or `run --tracking mlflow[=URI]`; default URI
`sqlite:///<experiment>/mlflow.db`) adds Ray Tune's own `MLflowLoggerCallback`: the
experiment folder's name is the MLflow experiment, each trial a run named after it, its
settings (`trial/...`) the run's params, and at every report the training curve (loss,
recon, n_diverged, value) plus, at evaluation steps, the evaluation's means
(`disentanglement_<task>` for each task of the study's dataset, dSprites'
`disentanglement_4var` and `_5var`, `recon_test`, ...), against the training step.
`backend = "wandb"` adds `WandbLoggerCallback` the same way: the project (default: the
study's name), one run per trial grouped by the experiment, the same metrics at the training
step. W&B's files go to the experiment folder's `wandb/` (not the trial folders: Ray copies
those before W&B has finished writing); `WANDB_MODE=offline` keeps the runs there, and
`wandb sync <experiment>/wandb/offline-run-*` uploads them later. Both are optional extras
(`pip install -e '.[mlflow]'` / `'.[wandb]'`); a missing one is a one-line error naming the
extra, before Ray starts, as is a URI or project the tracker would refuse (`check_tracking`).
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from study.errors import BadInput
from study.storage import check_writable
from trainables.result_line import ResultLine

CURVE = ("loss", "recon", "n_diverged", "value")
MLFLOW_DB = "mlflow.db"  # the default tracking store, in the experiment folder (MLflow 3
# refuses new file-based stores)


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """What a report gives the tracker: the training curve, the evaluation's means when the
    report is an evaluation's (what was measured: no NaN), and the step as Tune's
    `timesteps_total` (the x axis)."""
    line = ResultLine.read(result)
    if line is None:
        return {}
    out = {name: float(getattr(line, name)) for name in CURVE}
    if line.evaluation is not None:
        out.update(line.scores)
    measured = {k: v for k, v in out.items() if math.isfinite(v)}  # not NaN "not yet"s
    return {**measured, "timesteps_total": line.step}


def check_installed(tracking: dict[str, Any]) -> None:
    """BadInput naming the extra when the chosen tracker's package is missing."""
    backend = tracking["backend"]
    if backend == "none":
        return
    try:
        __import__({"mlflow": "mlflow", "wandb": "wandb"}[backend])
    except ImportError:
        raise BadInput(f"tracking.backend = '{backend}' needs the {backend} package: "
                       f"pip install -e '.[{backend}]' (or choose backend = 'none')") from None


def check_tracking(tracking: dict[str, Any]) -> None:
    """BadInput, before Ray starts and creating nothing, for what the tracker would refuse
    only once the study runs (a traceback after the experiment folder was made): a missing
    package, an MLflow URI (`check_mlflow_uri`), a W&B project name W&B's settings refuse."""
    check_installed(tracking)
    if tracking["backend"] == "mlflow" and tracking["uri"]:
        check_mlflow_uri(tracking["uri"])
    if tracking["backend"] == "wandb" and tracking["project"]:
        import wandb

        try:
            wandb.Settings(project=tracking["project"])
        except wandb.errors.Error as err:
            raise BadInput(f"tracking.project: {err}; choose another W&B project name") \
                from None


def check_mlflow_uri(uri: str) -> None:
    """An MLflow tracking URI a store takes, probed without side effects: a scheme MLflow's
    store registry knows, no file store (MLflow 3 creates none), a sqlite file whose folder
    can be created, an http(s) server that answers."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    fix = ("use sqlite:///PATH.db or http://HOST:PORT, or leave tracking.uri empty for "
           "sqlite:///<experiment>/mlflow.db")
    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException:
        raise BadInput(f"tracking.uri {uri!r}: MLflow has no tracking store for that "
                       f"scheme; {fix}") from None
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        raise BadInput(f"tracking.uri {uri!r}: MLflow 3 creates no file-based store; {fix}")
    if parts.scheme == "sqlite" and uri.removeprefix("sqlite://"):  # sqlite:// is in memory
        database = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        check_writable(database.parent, "tracking.uri's folder", fix)
    if parts.scheme in ("http", "https"):
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            socket.create_connection((parts.hostname, port), timeout=3).close()
        except (OSError, ValueError) as err:
            raise BadInput(f"tracking.uri {uri!r}: no MLflow server answers there ({err}); "
                           "start it or fix the URI") from None


def callbacks(tracking: dict[str, Any], experiment_dir: Path) -> list[Any]:
    """The Tune callbacks for the spec's [tracking] table (none for backend = 'none')."""
    check_installed(tracking)
    backend, name = tracking["backend"], experiment_dir.name
    if backend == "none":
        return []
    from study.callbacks.trackers import MLflowRuns, WandbRuns  # Ray's, importing its tracker

    if backend == "mlflow":
        uri = tracking["uri"] or f"sqlite:///{(experiment_dir / MLFLOW_DB).resolve()}"
        return [MLflowRuns(tracking_uri=uri, experiment_name=name)]
    # wandb. Ray hands its logging actor WANDB_API_KEY from here but not WANDB_MODE: on a Ray
    # the driver joined (`--address`, RAY_ADDRESS), the actor has that Ray's environment, and
    # a study run offline logged online
    mode = {"mode": os.environ["WANDB_MODE"]} if os.environ.get("WANDB_MODE") else {}
    return [WandbRuns(project=tracking["project"] or name, group=name,
                      dir=str(experiment_dir.resolve()), **mode)]


def __getattr__(name: str) -> Any:
    """`study.tracking.MLflowRuns` / `WandbRuns`, where they lived before: Tune pickles the
    callbacks into an experiment's tuner.pkl by module path, and a study written then names
    this module when it resumes."""
    if name in ("MLflowRuns", "WandbRuns"):
        from study.callbacks import trackers

        return getattr(trackers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
