"""A real token-authenticated Ray cluster as users start it: `ray start --head` and
`ray start --address` as separate processes (loopback only), one logical GPU each, the quick
study with `--gpus-per-trial 0.5` on both nodes; a driver without the token exits 2 naming
token authentication and the fix."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests.study.helpers import TINY, cli, finish, result_lines, trial_dirs

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def token_cluster(tmp_path):
    """Head and worker nodes (1 CPU, 1 logical GPU each) requiring one token; yields the
    address and the environment a driver needs to join."""
    token = secrets.token_hex(16)
    home = tmp_path / "home"  # no ~/.ray/auth_token of this machine's
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--num-gpus=1", "--node-ip-address=127.0.0.1", "--block",
              "--disable-usage-stats"]
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={temp}", *common], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    nodes = [head]
    try:
        wait = ("import ray, time\nray.init(address={a!r})\n"
                "deadline = time.time() + 120\n"
                "while sum(n['Alive'] for n in ray.nodes()) < {n} and time.time() < deadline:\n"
                "    time.sleep(0.5)\n"
                "print(sum(n['Alive'] for n in ray.nodes()))")
        ready = subprocess.run([sys.executable, "-c", wait.format(a=address, n=1)], env=env,
                               capture_output=True, text=True, timeout=180)
        assert ready.stdout.strip().endswith("1"), ready.stderr[-2000:]
        nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        ready = subprocess.run([sys.executable, "-c", wait.format(a=address, n=2)], env=env,
                               capture_output=True, text=True, timeout=180)
        assert ready.stdout.strip().endswith("2"), ready.stderr[-2000:]
        yield address, env
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(nodes):  # Ray's orderly stop takes half a minute: not waited for
            try:
                node.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_token_cluster_runs_half_gpu_trials_on_both_nodes(dsprites_path, tmp_path,
                                                          token_cluster):
    address, env = token_cluster
    without = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    code, out, err = finish(cli("run", "quick", "--address", address, "--storage",
                                str(tmp_path), "--name", "refused", *TINY, env=without),
                            timeout=180)
    assert code == 2 and "requires token authentication" in err and "RAY_AUTH_MODE=token" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "refused").exists()

    code, out, err = finish(cli("run", "quick", "--address", address, "--storage", str(tmp_path),
                                "--name", "t", "--gpus-per-trial", "0.5",
                                "--set", "train.steps=200", "--set", "train.report_every=50",
                                "--set", "study.families=['beta_vae']", *TINY, env=env))
    assert code == 0, err
    nodes = {line["node_id"] for trial in trial_dirs(tmp_path / "t")
             for line in result_lines(trial) if "node_id" in line}
    # half a GPU and one CPU per trial: the two trials run at once, one per node (long enough
    # that Tune starts both before it could reuse the first one's worker for the second)
    assert len(nodes) == 2
    assert len(pd.read_csv(tmp_path / "t" / "report" / "results.csv")) == 2 * 2 * 3
    code, out, err = finish(cli("run", "quick", "--address", address, "--storage", str(tmp_path),
                                "--name", "t2", "--gpus-per-trial", "2", env=env), timeout=180)
    assert code == 2 and "exceeds the most GPUs on any node (1)" in err, err
    assert not (tmp_path / "t2").exists()
