"""The private parts of our dependencies that the project still relies on, one test each:
when an upgrade renames one or changes its signature, the test fails naming the hook, the
module that relies on it and the pin in pyproject.toml to revisit. Where a public route
exists the project takes it (Optuna's define-by-run space, Ray's ResultGrid, torch's
functional Adam); these are the ones without."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pin(package: str) -> str:
    """The requirement string of `package` in pyproject.toml."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(d for d in dependencies if re.match(rf"{re.escape(package)}(?![\w.\[-])", d))


def broken(hook: str, user: str, package: str) -> str:
    return (f"{hook} changed in the installed {package}: {user} relies on it; pyproject.toml "
            f"pins {pin(package)!r}: keep the pin, or adapt {user} before widening it")


# ---- Ray Tune's population-based training (search_spaces/pbt_scheduler.py) -----------------
# Per-family populations, clones that keep their own seeds and a resumable scheduler state
# have no public hook in PopulationBasedTraining: PBTScheduler overrides these methods.
PBT_METHODS = {
    "_quantiles": ["self"],
    "_checkpoint_or_exploit": ["self", "trial", "tune_controller", "upper_quantile",
                               "lower_quantile"],
    "_get_new_config": ["self", "trial", "trial_to_clone"],
    "_save_trial_state": ["self", "state", "time", "result", "trial"],
}


@pytest.mark.parametrize("name", sorted(PBT_METHODS))
def test_pbt_methods_we_override_keep_their_signatures(name):
    from ray.tune.schedulers import PopulationBasedTraining

    method = getattr(PopulationBasedTraining, name, None)
    message = broken(f"ray.tune.schedulers.PopulationBasedTraining.{name}",
                     "search_spaces/pbt_scheduler.py", "ray[tune]")
    assert method is not None, message
    assert list(inspect.signature(method).parameters) == PBT_METHODS[name], message


@pytest.mark.parametrize(("caller", "call"), [
    ("on_trial_result", "self._quantiles()"),
    ("on_trial_result", "self._checkpoint_or_exploit("),
    ("_exploit", "self._get_new_config("),
    ("on_trial_result", "self._save_trial_state("),
])
def test_ray_still_calls_the_pbt_methods_we_override(caller, call):
    """An override Ray no longer calls would silently change nothing."""
    from ray.tune.schedulers import PopulationBasedTraining

    source = inspect.getsource(getattr(PopulationBasedTraining, caller))
    assert call in source, broken(f"PopulationBasedTraining.{caller} (calling {call}...)",
                                  "search_spaces/pbt_scheduler.py", "ray[tune]")


def test_pbt_per_trial_state_we_save_and_restore():
    """PBTScheduler reads and writes `_trial_state[trial]`'s perturbation bookkeeping and
    `_next_perturbation_sync` (pbt_state.json)."""
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pbt import _PBTTrialState

    message = broken("PopulationBasedTraining's per-trial state", "search_spaces/pbt_scheduler.py",
                     "ray[tune]")
    state = _PBTTrialState(SimpleNamespace(experiment_tag="t"))
    for field in ("last_perturbation_time", "last_train_time", "last_score", "last_checkpoint"):
        assert hasattr(state, field), message
    scheduler = PopulationBasedTraining(time_attr="step", metric="m", mode="max",
                                        hyperparam_mutations={"x": [1, 2]}, synch=True)
    assert isinstance(scheduler._trial_state, dict), message
    assert isinstance(scheduler._next_perturbation_sync, int | float), message


# ---- Optuna's non-dominated sort (search_spaces/pbt.py) -------------------------------------
def test_optunas_non_domination_rank_numbers_the_fronts_from_zero():
    """`exploit = "pareto"` sorts a population into fronts with Optuna's NSGA-II sort, which
    Optuna keeps private: a front number per row of minimised losses, equal rows together."""
    from optuna.study import _multi_objective

    message = broken("optuna.study._multi_objective._fast_non_domination_rank",
                     "search_spaces/pbt.py", "optuna")
    rank = getattr(_multi_objective, "_fast_non_domination_rank", None)
    assert rank is not None, message
    losses = np.array([[2.0, 2.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert rank(losses).tolist() == [2, 0, 1, 0, 1], message


# ---- Ray's Trial, as the driver's callbacks read it (study/callbacks/) -----------------------
# Ray documents the Callback hooks but not the Trial object they receive: every attribute the
# callbacks read is listed here and checked on the installed Ray.
CALLBACKS = Path(__file__).resolve().parents[1] / "study" / "callbacks"
TRIAL_READS = {"config", "last_result", "local_experiment_path", "local_path", "path",
               "status", "storage", "trial_id"}
STORAGE_READS = {"storage_filesystem", "trial_fs_path"}  # trial.storage's StorageContext


def _defines(cls: type, name: str) -> bool:
    """A property or class attribute of `cls`, or an attribute its __init__ assigns."""
    return (inspect.getattr_static(cls, name, None) is not None
            or f"self.{name} = " in inspect.getsource(cls.__init__)
            or f"self.{name}, " in inspect.getsource(cls.__init__))


def test_the_callbacks_read_only_the_trial_attributes_listed_here():
    """A new read of Ray's Trial in study/callbacks must join TRIAL_READS (and so be checked
    below) before it lands."""
    reads = [m.groups() for path in CALLBACKS.glob("*.py")
             for m in re.finditer(r"\b(?:trial|t|trials\[0\])\.(\w+)(?:\.(\w+))?",
                                  path.read_text())]
    trial = {attr for attr, _ in reads}
    storage = {inner for attr, inner in reads if attr == "storage" and inner}
    assert trial <= TRIAL_READS, f"study/callbacks reads Trial.{sorted(trial - TRIAL_READS)}"
    assert storage <= STORAGE_READS, f"study/callbacks reads StorageContext." \
        f"{sorted(storage - STORAGE_READS)}"


@pytest.mark.parametrize("name", sorted(TRIAL_READS))
def test_ray_trials_keep_the_attributes_the_callbacks_read(name):
    from ray.tune.experiment import Trial

    assert _defines(Trial, name), broken(f"ray.tune.experiment.Trial.{name}",
                                         "study/callbacks", "ray[tune]")
    assert Trial.RUNNING == "RUNNING", broken("Trial.RUNNING", "study/callbacks/console.py",
                                              "ray[tune]")


@pytest.mark.parametrize("name", sorted(STORAGE_READS))
def test_ray_storage_contexts_keep_the_attributes_the_callbacks_read(name):
    from ray.train._internal.storage import StorageContext

    assert _defines(StorageContext, name), broken(f"StorageContext.{name}",
                                                  "study/callbacks", "ray[tune]")


# ---- Ray's MLflow callback (study/callbacks/trackers.py) -------------------------------------
def test_the_mlflow_callback_keeps_each_trials_run_where_we_read_it():
    """MLflowRuns logs to `_trial_runs[trial]` through `mlflow_util.log_metrics`."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    message = broken("MLflowLoggerCallback._trial_runs / mlflow_util.log_metrics",
                     "study/callbacks/trackers.py", "ray[tune]")
    source = inspect.getsource(MLflowLoggerCallback.log_trial_start)
    assert "self._trial_runs[trial] = " in source, message
    util = MLflowLoggerCallback().mlflow_util
    assert list(inspect.signature(util.log_metrics).parameters) == [
        "step", "metrics_to_log", "run_id"], message


def test_mlflows_store_registry_tells_a_known_scheme_without_opening_the_store(tmp_path):
    """study.tracking.check_mlflow_uri asks `_tracking_store_registry.get_store_builder`
    whether a scheme has a store (MlflowException if not), which must create nothing."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    message = ("mlflow's _tracking_store_registry.get_store_builder changed: "
               "study/tracking.py relies on it; pyproject.toml's mlflow extra pins "
               "'mlflow-skinny>=3.0,<4': keep the pin, or adapt check_mlflow_uri")
    assert callable(_tracking_store_registry.get_store_builder(
        f"sqlite:///{tmp_path}/mlflow.db")), message
    assert list(tmp_path.iterdir()) == [], message
    with pytest.raises(MlflowException):
        _tracking_store_registry.get_store_builder("foo://x/y")


# ---- Ray's callback telemetry (study/runner.py) ---------------------------------------------
SKIP_TELEMETRY = """
import sys
from ray.air._internal import usage
from ray.tune import Callback
from study.runner import skip_callback_telemetry
skip_callback_telemetry()
usage.tag_callbacks([Callback()])
print(sorted({"mlflow", "wandb"} & set(sys.modules)))
"""


def test_tune_tags_its_callbacks_through_the_hook_the_runner_replaces():
    """`skip_callback_telemetry` replaces `ray.air._internal.usage.tag_callbacks`, which Tune's
    `run` calls by that module attribute; replaced, naming callbacks imports neither mlflow nor
    wandb (a fresh process: this one may have imported them for other tests)."""
    import subprocess
    import sys

    from ray.tune import tune

    message = broken("ray.air._internal.usage.tag_callbacks", "study/runner.py", "ray[tune]")
    assert "air_usage.tag_callbacks(callbacks)" in inspect.getsource(tune.run), message
    shown = subprocess.run([sys.executable, "-c", SKIP_TELEMETRY], capture_output=True,
                           text=True, timeout=120, cwd=PYPROJECT.parent)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split("\n")[-2] == "[]", message


# ---- scikit-learn's fitted histogram trees (metrics/dci.py) ------------------------
def test_hist_gradient_boosting_trees_expose_their_split_gains():
    """DCI's default importances sum each feature's split gains over the fitted trees:
    HistGradientBoostingClassifier has no feature_importances_."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    clf = HistGradientBoostingClassifier(max_iter=3).fit(x, x[:, 1] > 0)
    message = broken("HistGradientBoostingClassifier._predictors", "metrics/dci.py",
                     "scikit-learn")
    trees = getattr(clf, "_predictors", None)
    assert trees is not None and len(trees) == 3, message
    nodes = trees[0][0].nodes
    assert {"is_leaf", "feature_idx", "gain"} <= set(nodes.dtype.names), message
    assert nodes[0]["feature_idx"] == 1 and nodes[0]["gain"] > 0, message  # the root's split
