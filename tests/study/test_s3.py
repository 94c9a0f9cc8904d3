"""Studies on S3-compatible object storage through the real command line, against a local
moto server: run, SIGKILL, resume, status, report and evaluate from the URI; bad URIs exit 2
at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from pyarrow import fs as pafs

from study import spec
from study.cli import main
from tests.study.helpers import (
    TINY,
    assert_each_trial_trained_once,
    assert_no_trial_errored,
    checkpoints,
    cli,
    finish,
    free_port,
    one_finished_one_checkpointed,
    tensorboard_scalars,
    trial_dirs,
    wait_for,
)

pytestmark = pytest.mark.integration  # a moto server, and for the study the real CLI and Ray

BUCKET = "studies"


@dataclass
class S3:
    env: dict[str, str]  # the AWS_* variables (and the mirror folder) for the CLI
    filesystem: pafs.S3FileSystem


@contextmanager
def moto_server(**server_env: str) -> Iterator[int]:
    """A moto S3 server on a free local port (yields the port); stopped at the end."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], env={**os.environ, **server_env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the moto server did not start")
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def aws_env(port: int, mirror: Path) -> dict[str, str]:
    """The AWS variables of the server at `port`, and the mirror folder, for the CLI."""
    return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_EC2_METADATA_DISABLED": "true", "WAE_STUDY_MIRROR": str(mirror)}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with one bucket, for the whole module."""
    with moto_server() as port:
        filesystem = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                                       region="us-east-1", access_key="test",
                                       secret_key="test", allow_bucket_creation=True)
        filesystem.create_dir(BUCKET)
        yield S3(aws_env(port, tmp_path_factory.mktemp("mirror")), filesystem)


def download(s3: S3, path: str, dest: Path) -> Path:
    """The bucket's folder as a local folder, checkpoints as empty `pack.pt` placeholders."""
    for info in s3.filesystem.get_file_info(pafs.FileSelector(path, recursive=True,
                                                              allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        local = dest / os.path.relpath(info.path, path)
        local.parent.mkdir(parents=True, exist_ok=True)
        if "/checkpoint_" in info.path:
            local.touch()
        else:
            with s3.filesystem.open_input_stream(info.path) as src:
                local.write_bytes(src.readall())
    return dest


def test_s3_study_killed_resumed_with_status_report_and_evaluate(dsprites_path, s3, tmp_path):
    steps = 300
    uri = f"s3://{BUCKET}/pre"
    env = {**os.environ, **s3.env}
    proc = cli("run", "quick", "--storage", uri, "--name", "k", "--max-concurrent", "1",
               "--set", f"train.steps={steps}", "--set", "train.report_every=25",
               "--set", "train.checkpoint_every=50", "--set", "study.families=['beta_vae']",
               "--set", "grid.beta_vae=[1, 4, 8]", *TINY, env=env, cwd=tmp_path)
    ready = one_finished_one_checkpointed(steps)

    def killable() -> bool:  # read from the bucket, twice a second
        time.sleep(0.4)
        view = download(s3, f"{BUCKET}/pre/k", tmp_path / "view")
        return view.exists() and ready(trial_dirs(view))

    wait_for(proc, killable)
    os.killpg(proc.pid, 9)
    proc.wait()
    code, out, err = finish(cli("status", f"{uri}/k", env=env))
    assert code == 0 and "paused" in out, out + err
    code, out, err = finish(cli("resume", f"{uri}/k/", env=env, cwd=tmp_path))
    assert code == 0, err
    assert f"resuming {uri}/k" in out
    experiment = download(s3, f"{BUCKET}/pre/k", tmp_path / "final")
    assert len(trial_dirs(experiment)) == 3
    assert_no_trial_errored(experiment)
    assert_each_trial_trained_once(experiment, steps)
    for trial in trial_dirs(experiment):  # pruned in the bucket; curves uploaded by Ray
        assert len(checkpoints(trial)) == 1, trial.name  # the others emptied, with a note
        assert "train/loss" in tensorboard_scalars(trial)
    runs = json.loads((experiment / "provenance.json").read_text())
    assert [r["command"] for r in runs] == ["run", "resume"]
    assert (experiment / "study.toml").is_file()
    assert not any(tmp_path.glob(f"{BUCKET}*"))  # nothing of the bucket's paths in the cwd
    code, out, err = finish(cli("status", f"{uri}/k", env=env))
    assert code == 0 and "3 finished" in out, out + err
    code, out, err = finish(cli("report", f"{uri}/k", env=env))
    assert code == 0, err
    assert Path(out.strip().splitlines()[-1]).is_file()  # the mirror's index.html
    results = pd.read_csv(download(s3, f"{BUCKET}/pre/k/report", tmp_path / "report")
                          / "results.csv")
    assert len(results) == 3 * 2 * 3
    assert not results.duplicated(["trial_id", "replicate", "calculation"]).any()
    assert (results["step"] == steps).all()
    # the resumed trials kept the seeds the spec gave them: one per model, all distinct
    expected = {(c["value"], r, s) for c in spec.expand(spec.load(str(experiment / "study.toml")))
                for r, s in enumerate(c["seeds"])}
    assert set(zip(results["value"], results["replicate"], results["seed"], strict=True)) \
        == expected and len({s for _, _, s in expected}) == 6
    code, out, err = finish(cli("evaluate", f"{uri}/k", "--metrics", "mig", env=env))
    assert code == 0, err  # each trial's final checkpoint downloaded, scored, uploaded
    evaluated = download(s3, f"{BUCKET}/pre/k", tmp_path / "evaluated")
    for trial in trial_dirs(evaluated):
        rows = json.loads((trial / "extra_metrics.json").read_text())
        assert [(r["replicate"], r["step"]) for r in rows] == [(0, steps), (1, steps)]
    assert pd.read_csv(evaluated / "report" / "results.csv")["mig"].notna().all()


@pytest.mark.parametrize("storage, endpoint, message", [
    (f"s3://{BUCKET}-none/x", None, f"the bucket s3://{BUCKET}-none does not exist"),
    (f"s3://{BUCKET}/x", "http://127.0.0.1:1", "cannot reach the storage at http://127.0.0.1:1"),
    ("foo://x/y", None, "no file system handles it"),
])
def test_bad_uris_exit_2_at_once_and_write_nothing(s3, storage, endpoint, message, tmp_path,
                                                   monkeypatch, capsys):
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    mirror = Path(s3.env["WAE_STUDY_MIRROR"])
    before = (sorted(mirror.rglob("*")), [i.path for i in s3.filesystem.get_file_info(
        pafs.FileSelector(BUCKET, recursive=True))])
    for args in (["run", "quick", "--storage", storage, "--name", "b"], ["status", storage]):
        start = time.monotonic()
        assert main(args) == 2
        assert time.monotonic() - start < 15
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert (sorted(mirror.rglob("*")), [i.path for i in s3.filesystem.get_file_info(
        pafs.FileSelector(BUCKET, recursive=True))]) == before


def test_a_uri_that_is_no_experiment_is_refused(s3, monkeypatch, capsys):
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    assert main(["resume", f"s3://{BUCKET}/nothing/here"]) == 2
    assert "is not a wae-study experiment (no study.toml)" in capsys.readouterr().err


def test_refused_or_missing_credentials_exit_2_at_once(tmp_path, monkeypatch, capsys):
    """A server that checks signatures (moto with authentication on): unknown keys, none."""
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as port:
        for key, value in aws_env(port, tmp_path / "mirror").items():
            monkeypatch.setenv(key, value)
        for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            monkeypatch.setenv(name, str(tmp_path / "none"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown")
        for missing in (False, True):
            if missing:
                monkeypatch.delenv("AWS_ACCESS_KEY_ID")
                monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
            start = time.monotonic()
            assert main(["run", "quick", "--storage", f"s3://{BUCKET}/x"]) == 2
            assert time.monotonic() - start < 15
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert "access denied" in err and "AWS_ACCESS_KEY_ID" in err, err
    assert not (tmp_path / "mirror").exists()


def test_checkpoints_tune_deleted_are_noted_in_the_bucket_before_a_resume(s3, tmp_path):
    """Ray uploads its experiment state after the checkpoints it names: a killed driver's
    state in the bucket can name a checkpoint deleted since (the flake this fixes: the trial
    failed with "does not exist on storage anymore"). The resume notes every deleted one; the
    trainable follows the note to the trial's newest checkpoint, by step."""
    from ray import tune

    from study.runner import mark_deleted
    from trainables import checkpoint
    from trainables.trainable import restorable_payload

    trial = f"{BUCKET}/stale/t0"
    for number, step in ((2, 60), (3, 40)):  # 2: the numbering restarted after a stale resume
        local = tmp_path / f"checkpoint_{number:06d}"
        checkpoint.save(local, {"step": step, "config": {}, "trial_id": "t0"})
        for name in ("pack.pt", "step.json"):
            with s3.filesystem.open_output_stream(f"{trial}/{local.name}/{name}") as out:
                out.write((local / name).read_bytes())
    mark_deleted(f"{BUCKET}/stale", s3.filesystem)
    stale = f"{trial}/checkpoint_000001"
    assert s3.filesystem.get_file_info(stale).type == pafs.FileType.Directory  # Ray's check
    payload = restorable_payload(tune.Checkpoint(stale, s3.filesystem), None, "t0", 100)
    assert payload["step"] == 60
