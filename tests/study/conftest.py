"""The Ray head that study tests share: a command run with `cli(..., joining=ray_head)` joins
it through RAY_ADDRESS (`study.runner.start_ray`) instead of starting and stopping a Ray of
its own, which costs seconds per command. What is about processes dying (a SIGKILLed driver
and its Ray, a killed worker, a lost node, the signals, a study's own Ray refusing a GPU)
keeps its own Ray; the resume after it, a plain run, joins the head. So does a test whose
trials need the driver's environment (S3 credentials): a worker of the head has the head's
environment."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.study.forked_cli import start_server
from tests.study.helpers import RAY, RayHead, free_port

JOIN = ("import ray\nray.init(address={address!r}, logging_level='ERROR')\n"
        "print(ray.get_runtime_context().get_node_id())")


@pytest.fixture(scope="session", autouse=True)
def fork_server(request: pytest.FixtureRequest) -> None:
    """The fork server of the study tests' commands (tests/study/forked_cli.py), started
    before any test sets environment variables of its own, which the server would keep; not
    at all where no test runs a command (`make test-fast`: ~4 s of imports saved)."""
    if any(item.get_closest_marker("integration") for item in request.session.items):
        start_server()


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """`ray start --head` on loopback with a token of its own and one CPU: a study that joins
    it runs its trials one at a time, in one trial worker reused by each (Tune's
    `reuse_actors`), where two CPUs would start a second worker. Each worker costs ~5 s of
    CPU in imports (torch, Ray Tune), and on the 2-core machine the parallel test workers
    already keep both cores busy. The grid study's test asks for half a CPU per trial, so its
    trials still share the head two at a time."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    address = f"127.0.0.1:{free_port()}"
    env = {"RAY_ADDRESS": address, "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={address.split(':')[1]}",
         "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
         "--block"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        joined = subprocess.run([sys.executable, "-c", JOIN.format(address=address)],
                                env={**os.environ, **env}, capture_output=True, text=True,
                                timeout=120)
        assert joined.returncode == 0, joined.stderr[-2000:]
        yield RayHead(env, joined.stdout.split()[-1])
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # Ray's orderly stop takes seconds: not needed
        head.wait()
        subprocess.run(["pkill", "-9", "-f", temp], capture_output=True)  # outside the group
        shutil.rmtree(temp, ignore_errors=True)

