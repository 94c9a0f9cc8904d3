"""`wae-study run` and `resume`: a validated spec → Ray Tune → the report.

Order matters for "nothing written on bad input": the spec, flags, data file, storage and
Ray's resources are all checked before the experiment folder is created.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from analysis.box import Box
from search_spaces.pbt import Scale
from study import signals
from study import spec as specs
from study.errors import BadInput
from study.storage import Remote, check_writable, is_uri, open_remote
from trainables import experiment
from trainables.columns import study_primary_task
from trainables.config import trial_settings
from trainables.data import painting_source

DEFAULT_STORAGE = "experiments"


def storage_root(storage: str | None) -> Path | Remote:
    """A local folder (or mounted shared file system) every node can reach, or object
    storage (`s3://bucket/prefix`, checked within seconds by `study.storage.open_remote`)."""
    raw = storage or os.environ.get("WAE_STUDY_STORAGE") or DEFAULT_STORAGE
    if is_uri(raw):
        return open_remote(raw)
    return Path(raw.removeprefix("file://")).expanduser().resolve()


@contextmanager
def exclusive(experiment_dir: Path) -> Iterator[None]:
    """One run or resume per folder: the folder's lock, or BadInput while another holds it."""
    with ExitStack() as stack:
        try:
            stack.enter_context(experiment.locked(experiment_dir))
        except experiment.FolderInUse:
            raise BadInput(f"{experiment_dir} is in use by another wae-study run or resume; "
                           "wait for it to finish or stop it first") from None
        yield


def check_address(address: str) -> None:
    """Fail within seconds on a Ray address that does not answer (ray.init can wait long)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address {address}: expected 'auto' or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as err:
        raise BadInput(f"--address {address}: no Ray head answers there ({err}); start one "
                       "with `ray start --head` or fix the address") from None


def start_ray(address: str | None, search: str) -> None:
    import ray

    if address:
        check_address(address)
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # Only our result files and TensorBoard scalars (build_tuner): Ray's own
    # TensorBoard logger would try to log the results' lists.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables of its own
    if search == "pbt":
        # The PBT scheduler adds its objective to the results it ranks; Tune's check that every
        # result carries the scheduler's metric would refuse them before it sees them.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Trial output stays in each trial's folder; the driver prints one line per interval.
    if address:
        failure = None
        with captured_stderr() as said:  # Ray's core logs there why it could not connect
            try:
                ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            except ConnectionError as err:
                failure = err
            logged = said()
        if failure is None:
            sys.stderr.write(logged)  # joined: Ray's lines as they would have been
        elif AUTH_FAILURE in logged:
            raise BadInput(auth_failure(address))
        else:
            raise BadInput(f"--address {address}: cannot join the Ray cluster ({failure})")
    else:
        # No --address: a private instance. Plain ray.init() would join whatever cluster
        # `ray start` or another process's test cluster last registered on this machine
        # (/tmp/ray/ray_current_cluster), and fail when it goes away. RAY_ADDRESS still wins.
        with own_process_group():
            ray.init(address=None if os.environ.get("RAY_ADDRESS") else "local",
                     include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                     runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}})
    signals.install()  # over ray.init's SIGTERM handlers
    # Tune's warnings speak of its own API (on Ctrl-C: "Resume experiment with:
    # Tuner.restore(...)", then one FileNotFoundError per trial not yet started); the project
    # says what happened and what to run (`finish`, the progress lines). Errors still show.
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    skip_callback_telemetry()


def skip_callback_telemetry() -> None:
    """Ray's usage telemetry names the Tune callbacks a run is given by importing its MLflow
    and W&B integrations, and with them mlflow and wandb where installed, to compare classes:
    1.8 s of every `run` and `resume` on a 2-core machine, for one usage tag. That tag stays
    unrecorded (tests/test_dependency_contracts.py checks that Tune still calls this hook)."""
    from ray.air._internal import usage

    usage.tag_callbacks = lambda callbacks: False


@contextmanager
def own_process_group() -> Iterator[None]:
    """The processes started inside (the local Ray's GCS, raylet and agents) go into a process
    group of their own, the driver back into its group after: a signal to the driver's group
    (`timeout`'s SIGTERM, a closed terminal's SIGHUP) then reaches the driver alone, which
    stops the study (Tune saves) and shuts its Ray down, instead of killing the GCS under it.
    A session leader cannot change groups: its Ray stays in its group. Where the driver's
    group is gone when it comes back (it was its last member, the leader having exited, as
    after `bash -c 'wae-study run ... &'`), it leads a group of its own."""
    if os.getsid(0) == os.getpid():
        yield
        return
    home = os.getpgrp()
    holder = subprocess.Popen(["sleep", "60"], process_group=0)  # leads a new group
    try:
        os.setpgid(0, holder.pid)  # the driver joins it; the group outlives its leader
    finally:
        holder.kill()
        holder.wait()
    try:
        yield
    finally:
        try:
            os.setpgid(0, home)
        except PermissionError:  # no group `home` left in the session to go back to
            os.setpgid(0, 0)


AUTH_FAILURE = "InvalidAuthToken"  # what Ray's core logs when the cluster refuses a token


def auth_failure(address: str) -> str:
    """The one-line reason and fix when a token-authenticated cluster refuses the driver."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        return (f"--address {address}: the Ray cluster requires token authentication (Ray >= "
                "2.59 `ray start` turns it on): set RAY_AUTH_MODE=token and the cluster's token "
                "(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token; `ray get-auth-token` on the "
                "head prints it) here, as on every node")
    return (f"--address {address}: the Ray cluster refused this machine's token (RAY_AUTH_TOKEN "
            "or ~/.ray/auth_token): use the head's, which `ray get-auth-token` prints there")


@contextmanager
def captured_stderr() -> Iterator[Any]:
    """Send file descriptor 2 (where Ray's C++ core logs) to a temporary file while inside;
    yields a function returning what was written so far. Python's sys.stderr is flushed
    first, so nothing of ours is lost or reordered."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)

        def said() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def check_resources(resources: dict[str, Any]) -> None:
    """Refuse a per-trial request that no node can satisfy instead of pending forever."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    if resources["gpus_per_trial"] > most_gpus:
        raise BadInput(f"--gpus-per-trial {resources['gpus_per_trial']:g} exceeds the most GPUs "
                       f"on any node ({most_gpus:g}); lower it or add GPU nodes")
    if resources["cpus_per_trial"] > most_cpus:
        raise BadInput(f"--cpus-per-trial {resources['cpus_per_trial']:g} exceeds the most CPUs "
                       f"on any node ({most_cpus:g}); lower it")


def trainable(resources: dict[str, Any], dataset: Any, experiment_dir: Path | None):
    """train_trial with the data (the loaded dataset's stored array, and scream_dsprites'
    painting) in the object store once and the per-trial resources; `experiment_dir`: the
    experiment's folder as every node sees it (None on object storage), where a restored
    trial looks for checkpoints Tune's saved state lacks."""
    from ray import tune

    from trainables.data import painting_of
    from trainables.trainable import train_trial

    with_data = tune.with_parameters(
        train_trial, packed=dataset.stored, painting=painting_of(dataset),
        experiment_dir=None if experiment_dir is None else str(experiment_dir.resolve()))
    return tune.with_resources(with_data, {"cpu": resources["cpus_per_trial"],
                                           "gpu": resources["gpus_per_trial"]})


def build_tuner(spec: dict[str, dict[str, Any]], experiment_dir: Path, dataset: Any,
                remote: Remote | None = None):
    """The Tuner of a new study in `experiment_dir`, or on `remote` (whose mirror that is)."""
    from ray import tune

    from study import tracking
    from study.callbacks.console import ProgressLines
    from study.callbacks.mirror import MirrorUploads
    from study.callbacks.pruning import PruneFinished
    from study.callbacks.record import ResultFiles
    from study.callbacks.tensorboard_curves import TensorBoardScalars
    from study.estimates import trial_dirname

    resources = spec["resources"]
    search = spec["study"]["search"]
    if search in ("grid", "pbt"):
        configs = specs.expand(spec)
        param_space: dict[str, Any] = {"trial": tune.grid_search(configs)}
        scheduler = None
        if search == "pbt":
            from search_spaces.pbt_scheduler import PBTScheduler

            box, task = Box.from_spec(spec), study_primary_task(spec)
            scheduler = PBTScheduler(spec["pbt"], spec["train"]["steps"],
                                     Scale(box.floor(task), box.recon_reference), task)
        tune_config = tune.TuneConfig(
            max_concurrent_trials=resources["max_concurrent"] or None,
            trial_dirname_creator=trial_dirname, scheduler=scheduler, reuse_actors=True)
    else:
        from search_spaces.adaptive import make_searcher

        study = spec["study"]
        param_space = {"trial": {**spec["train"], "replicates": study["replicates"]}}
        searcher = make_searcher(spec["adaptive"], study, experiment_dir,
                                 study_primary_task(spec))
        if resources["max_concurrent"]:
            from ray.tune.search import ConcurrencyLimiter

            searcher = ConcurrencyLimiter(searcher, max_concurrent=resources["max_concurrent"])
        tune_config = tune.TuneConfig(search_alg=searcher, num_samples=spec["adaptive"]["trials"],
                                      trial_dirname_creator=trial_dirname, reuse_actors=True)
    storage: dict[str, Any] = ({"storage_path": str(experiment_dir.parent)} if remote is None
                               else {"storage_path": remote.parent_path,
                                     "storage_filesystem": remote.filesystem})
    run_config = tune.RunConfig(
        name=experiment_dir.name,
        **storage,
        failure_config=tune.FailureConfig(max_failures=resources["max_failures"]),
        # While trials run: the latest checkpoint and one fallback; PBT keeps two more, which
        # other trials may be about to clone (Ray warns below three).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if search == "pbt" else 2),
        callbacks=[ResultFiles(), ProgressLines(specs.n_trials(spec), spec["train"]),
                   PruneFinished(at_end=search == "pbt"),
                   TensorBoardScalars(),
                   *([MirrorUploads(remote)] if remote else []),
                   *tracking.callbacks(spec["tracking"], experiment_dir)],
        verbose=0,
    )
    return tune.Tuner(trainable(resources, dataset, None if remote else experiment_dir),
                      param_space=param_space,
                      tune_config=tune_config, run_config=run_config)


def run(source: str, overrides: list[str], name: str | None, storage: str | None,
        address: str | None, flags: dict[str, Any], data_path: Path | None) -> int:
    """Validate everything, create the experiment folder, run the study, write the report."""
    from trainables import data as dsdata

    spec = specs.load(source, overrides)
    for key, value in flags.items():
        if value is not None:
            spec["resources"][key] = value
    if data_path is not None:
        spec["train"]["data_path"] = str(Path(data_path).expanduser().resolve())
    spec = specs.resolve(spec)
    specs.refuse_unshared_pbt(spec)
    from study.tracking import check_tracking

    check_tracking(spec["tracking"])
    name = name or f"{spec['study']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not specs.NAME_PATTERN.match(name):
        raise BadInput(f"--name '{name}' must be 1-64 letters, digits, '_', '.' or '-', "
                       "starting with a letter or digit")
    root = storage_root(storage)
    remote = root.child(name) if isinstance(root, Remote) else None
    experiment_dir = remote.mirror if remote else root / name
    where = remote.uri if remote else experiment_dir
    if remote.exists() if remote else experiment_dir.exists():
        raise BadInput(f"{where} already exists; `wae-study resume {where}` continues it, or "
                       "pass another --name")
    check_writable(experiment_dir.parent if remote else root)
    dsdata.check_source(spec["train"]["data_path"], specs.dataset_of(spec))
    start_ray(address, spec["study"]["search"])
    check_resources(spec["resources"])
    dataset = dsdata.load(spec["train"].get("data_path"), dataset=specs.dataset_of(spec))
    if remote:
        shutil.rmtree(experiment_dir, ignore_errors=True)  # the mirror of a deleted experiment
    return start_study(spec, experiment_dir, dataset, remote)


def start_study(spec: dict[str, dict[str, Any]], experiment_dir: Path, dataset: Any,
                remote: Remote | None = None) -> int:
    """Create the experiment folder of a validated spec and run it to its report, on the Ray
    already started (`run`, and each study of a comparison)."""
    from analysis import provenance

    where = remote.uri if remote else experiment_dir
    experiment_dir.mkdir(parents=True)
    with exclusive(experiment_dir):
        experiment.write_atomic(experiment.study_file(experiment_dir), specs.dumps(spec))
        provenance.record_run(experiment_dir, "run", dataset.source,
                              painting_source(dataset))
        if remote:
            remote.push(experiment.STUDY_FILE, provenance.FILE)
        print(f"study {experiment_dir.name}: {specs.n_models(spec)} models in "
              f"{specs.n_trials(spec)} trials -> {where}",
              flush=True)
        tuner = build_tuner(spec, experiment_dir, dataset, remote)
        return finish(tuner.fit(), spec, experiment_dir, dataset, remote)


def resume(experiment_dir: Path, address: str | None = None,
           remote: Remote | None = None) -> int:
    """Continue a study: finished trials kept, unfinished from their checkpoints. A remote
    one (`remote`) from the bucket, `experiment_dir` being its pulled mirror."""
    from trainables import data as dsdata

    experiment_dir = Path(experiment_dir).expanduser().resolve()
    spec = specs.experiment_spec(experiment_dir)
    with exclusive(experiment_dir):
        start_ray(address, spec["study"]["search"])
        check_resources(spec["resources"])
        dataset = dsdata.load(spec["train"].get("data_path"), dataset=specs.dataset_of(spec))
        return continue_study(spec, experiment_dir, dataset, remote)


def continue_study(spec: dict[str, dict[str, Any]], experiment_dir: Path, dataset: Any,
                   remote: Remote | None = None) -> int:
    """Continue an experiment whose lock the caller holds, on the Ray already started
    (`resume`, and each unfinished study of a comparison)."""
    from ray import tune

    from analysis import provenance

    path, filesystem = (remote.path, remote.filesystem) if remote else (experiment_dir, None)
    mark_deleted(str(path), filesystem)
    if not tune.Tuner.can_restore(str(path), storage_filesystem=filesystem):
        # killed before Ray saved
        tuner = build_tuner(spec, experiment_dir, dataset, remote)
    else:
        tuner = tune.Tuner.restore(
            str(path), trainable(spec["resources"], dataset,
                                 None if remote else experiment_dir),
            resume_unfinished=True, resume_errored=True, storage_filesystem=filesystem)
    provenance.record_run(experiment_dir, "resume", dataset.source,
                          painting_source(dataset))
    if remote:
        remote.push(provenance.FILE)
    print(f"resuming {remote.uri if remote else experiment_dir}", flush=True)
    return finish(tuner.fit(), spec, experiment_dir, dataset, remote)


def mark_deleted(experiment_path: str, filesystem: Any = None) -> None:
    """Note, in every trial folder, the checkpoints Tune deleted that its saved state may still
    name (`trainables.experiment.mark_deleted_checkpoints`), so each trial resumes from its
    newest one instead of failing."""
    from pyarrow.fs import FileSelector, FileType, LocalFileSystem

    from trainables.experiment import mark_deleted_checkpoints

    filesystem = filesystem or LocalFileSystem()
    for info in filesystem.get_file_info(FileSelector(experiment_path, allow_not_found=True)):
        if info.type == FileType.Directory:
            mark_deleted_checkpoints(info.path, filesystem)


def finish(results: Any, spec: dict[str, dict[str, Any]], experiment_dir: Path,
           dataset: Any, remote: Remote | None = None) -> int:
    """Reconcile Optuna, write the report, and say how the study ended (exit code). A remote
    study's trials are pulled first, and the driver's files and the report pushed after."""
    # A trial is done when it reached its last step: after Ctrl-C Tune marks the trials it
    # stopped TERMINATED too, and may not have created every trial yet (hence the count).
    trials = [({**trial_settings(r.config or {}), **(r.metrics or {})}, r.error)
              for r in results]  # ResultGrid: each trial's config and last result, its error
    reached = [experiment.reached_last_step(t.get("step"), t.get("steps")) for t, _ in trials]
    done = [t for (t, _), end in zip(trials, reached, strict=True) if end]
    errored = [t for (t, error), end in zip(trials, reached, strict=True)
               if error is not None and not end]
    unfinished = specs.n_trials(spec) - len(done) - len(errored)
    if spec["study"]["search"] == "adaptive" and not unfinished:
        from search_spaces.adaptive import reconcile

        reconcile(experiment_dir, done, spec["adaptive"], study_primary_task(spec))
    from analysis import provenance
    from analysis.report import write_report
    from study.report_command import print_report

    if remote:
        remote.pull(checkpoints=True)  # the lock keeps the mirror's newer optuna.db
    report = write_report(experiment_dir, data=dataset)
    if remote:
        remote.push(provenance.FILE, experiment.OPTUNA_FILE, report.name)
    where = remote.uri if remote else experiment_dir
    if unfinished:
        print(f"interrupted: {unfinished} trials unfinished; continue with "
              f"`wae-study resume {where}`", file=sys.stderr)
        print_report(report)
        return 130
    if errored:
        print(f"{len(errored)} trials failed after their retries; see their error.txt under "
              f"{where}; `wae-study resume {where}` retries them",
              file=sys.stderr)
        print_report(report)
        return 1
    print_report(report)
    return 0
