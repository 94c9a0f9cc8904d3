"""A real token-authenticated Ray cluster on two hosts: two network namespaces joined by a
veth pair, each with its own address, `ray start --head` in one and `ray start --address` in
the other (1 CPU and one logical GPU each), the driver joining the head by its address. The
quick study runs with `--gpus-per-trial 0.5` on both hosts; then the worker host's Ray is
killed mid-study, and its trials continue from their checkpoints on the head. A driver
without the token exits 2 naming token authentication and the fix. Both hosts share this
machine's file system (the storage folder), as a cluster with NFS does.

Needs root and `ip netns` (Linux); skips with the reason elsewhere."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.study.helpers import (
    RAY,
    TINY,
    assert_each_trial_trained_once,
    cli,
    finish,
    result_lines,
    trial_dirs,
    wait_for,
)

pytestmark = pytest.mark.integration  # the real CLI, Ray and a study

HEAD_IP, WORKER_IP, PORT = "10.211.0.1", "10.211.0.2", 6379


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def netns_unavailable() -> str | None:
    """Why two network namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2's `ip` (network namespaces)"
    probe = f"wae-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe)
    _ip("netns", "del", probe)
    return None if made.returncode == 0 else f"`ip netns add` failed: {made.stderr.strip()}"


@pytest.fixture
def two_hosts():
    """Namespaces `head` and `worker` (their names), joined by a veth pair."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    head, worker = f"wae-h-{tag}", f"wae-w-{tag}"
    steps = [("netns", "add", head), ("netns", "add", worker),
             ("link", "add", f"vh{tag}", "type", "veth", "peer", "name", f"vw{tag}"),
             ("link", "set", f"vh{tag}", "netns", head),
             ("link", "set", f"vw{tag}", "netns", worker)]
    for ns, dev, ip in ((head, f"vh{tag}", HEAD_IP), (worker, f"vw{tag}", WORKER_IP)):
        steps += [("-n", ns, "addr", "add", f"{ip}/24", "dev", dev),
                  ("-n", ns, "link", "set", dev, "up"), ("-n", ns, "link", "set", "lo", "up")]
    try:
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield head, worker
    finally:
        _ip("netns", "del", head)
        _ip("netns", "del", worker)


def in_ns(ns: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *command]


@pytest.fixture
def token_cluster(tmp_path, two_hosts):
    """The head in one namespace, a worker in the other (1 CPU, 1 logical GPU each), one
    token; yields (address, the driver's environment, the head's namespace, the worker's Ray
    process group)."""
    head_ns, worker_ns = two_hosts
    token = secrets.token_hex(16)
    home = tmp_path / "home"  # no ~/.ray/auth_token of this machine's
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    address = f"{HEAD_IP}:{PORT}"
    common = ["--num-cpus=1", "--num-gpus=1", "--block", "--disable-usage-stats"]
    temps = [tempfile.mkdtemp(prefix="ray-", dir="/tmp") for _ in range(2)]  # one per host
    nodes = []
    wait = ("import ray, time\nray.init(address={a!r})\n"
            "deadline = time.time() + 120\n"
            "while sum(n['Alive'] for n in ray.nodes()) < {n} and time.time() < deadline:\n"
            "    time.sleep(0.5)\n"
            "print(sum(n['Alive'] for n in ray.nodes()))")
    try:
        for ns, extra, temp, n in ((head_ns, ["--head", f"--port={PORT}",
                                              "--include-dashboard=false"], temps[0], 1),
                                   (worker_ns, [f"--address={address}"], temps[1], 2)):
            ip = HEAD_IP if ns == head_ns else WORKER_IP
            nodes.append(subprocess.Popen(
                in_ns(ns, RAY, "start", *extra, f"--node-ip-address={ip}", f"--temp-dir={temp}",
                      *common), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
            ready = subprocess.run(in_ns(head_ns, sys.executable, "-c",
                                         wait.format(a=address, n=n)),
                                   env=env, capture_output=True, text=True, timeout=180)
            assert ready.stdout.strip().endswith(str(n)), ready.stderr[-2000:]
        yield address, env, head_ns, nodes[1]
    finally:
        for node in reversed(nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(nodes):  # Ray's orderly stop takes half a minute: not waited for
            try:
                node.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        subprocess.run(["pkill", "-9", "-f", "|".join(temps)], capture_output=True)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def test_two_host_token_cluster_survives_losing_the_worker_host(dsprites_path, tmp_path,
                                                                 token_cluster):
    address, env, head_ns, worker = token_cluster
    without = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    code, out, err = finish(cli("run", "quick", "--address", address, "--storage",
                                str(tmp_path), "--name", "refused", *TINY, env=without,
                                prefix=in_ns(head_ns)), timeout=180)
    assert code == 2 and "requires token authentication" in err and "RAY_AUTH_MODE=token" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "refused").exists()
    code, out, err = finish(cli("run", "quick", "--address", address, "--storage", str(tmp_path),
                                "--name", "t2", "--gpus-per-trial", "2", env=env,
                                prefix=in_ns(head_ns)), timeout=180)
    assert code == 2 and "exceeds the most GPUs on any node (1)" in err, err
    assert not (tmp_path / "t2").exists()

    steps = 400
    started = time.monotonic()
    proc = cli("run", "quick", "--address", address, "--storage", str(tmp_path), "--name", "t",
               "--gpus-per-trial", "0.5", "--set", f"train.steps={steps}",
               "--set", "train.report_every=50", "--set", "train.checkpoint_every=100",
               "--set", "study.families=['beta_vae']", *TINY, env=env, prefix=in_ns(head_ns))
    experiment = tmp_path / "t"

    def on_worker() -> Path | None:  # a trial on the worker host, checkpointed, not finished
        for trial in trial_dirs(experiment) if experiment.exists() else []:
            lines = result_lines(trial)
            if lines and lines[-1].get("node_ip") == WORKER_IP and any(
                    (p / "pack.pt").is_file() for p in trial.glob("checkpoint_*")) and \
                    lines[-1]["step"] < steps:
                return trial
        return None

    victim = wait_for(proc, on_worker)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker host's raylet, its workers, all of it
    subprocess.run(["pkill", "-9", "-f", "node.ip.address=" + WORKER_IP.replace(".", r"\.")],
                   capture_output=True)  # any of its processes outside the group
    code, out, err = finish(proc)
    assert code == 0, err
    hosts = {line["node_ip"] for trial in trial_dirs(experiment)
             for line in result_lines(trial) if "node_ip" in line}
    assert hosts == {HEAD_IP, WORKER_IP}  # both hosts trained
    assert_each_trial_trained_once(experiment, steps)  # the victim went on from a checkpoint
    lines = result_lines(victim)
    assert lines[-1]["node_ip"] == HEAD_IP
    print(f"two-host study with a worker lost: {time.monotonic() - started:.0f} s; the victim "
          f"retrained steps {retrained(lines)}")
    assert len(pd.read_csv(experiment / "report" / "results.csv")) == 2 * 2 * 3


def retrained(lines: list[dict]) -> list[int]:
    """Steps a trial reported twice: what it trained again after losing its host."""
    seen, again = set(), []
    for line in lines:
        if line["step"] in seen and line["step"] > 0:
            again.append(line["step"])
        seen.add(line["step"])
    return again
