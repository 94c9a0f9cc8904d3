"""Helpers of the end-to-end study tests: the real command line in a process of its own, the
trial folders it writes, and kill points for the fault and resume tests."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from tensorboardX.proto import event_pb2

from tests.study.forked_cli import ForkedCommand
from trainables import checkpoint

TINY = ["--set", "train.encoder_width=32", "--set", "train.decoder_width=32",
        "--set", "train.latent_dim=4", "--set", "train.batch_size=16",
        "--set", "train.recon_eval_images=100", "--set", "train.higgins_votes=100",
        "--set", "train.higgins_classifier_steps=100", "--set", "study.replicates=2"]


Command = ForkedCommand | subprocess.Popen  # what `cli` returns
RAY = str(Path(sys.executable).with_name("ray"))  # the `ray` command of this environment


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class RayHead:
    """A running Ray head that commands can join (the `ray_head` fixture)."""

    env: dict[str, str]  # what a driver joins it with: RAY_ADDRESS and its token
    node_id: str  # its node, as trials report it (`node_id` in result.json)


def cli(*args: str, prefix: list[str] | tuple = (), joining: RayHead | None = None,
        env: dict[str, str] | None = None, cwd: Path | str | None = None
        ) -> Command:
    """`wae-study ARGS` in a process of its own, forked with the study's libraries imported
    (tests/study/forked_cli.py); with `prefix` (e.g. `ip netns exec NS`, to run it there) a
    fresh subprocess. `joining`: a running Ray head to join instead of starting one, the
    `ray_head` fixture."""
    env = {**(os.environ if env is None else env), **(joining.env if joining else {})}
    if not prefix:
        return ForkedCommand(list(args), env, str(cwd or os.getcwd()))
    return subprocess.Popen([*prefix, sys.executable, "-m", "study.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env, cwd=cwd)


def finish(proc: Command, timeout: float = 400) -> tuple[int, str, str]:
    """The command's exit code and output; past `timeout` its whole process group is killed
    (a hung study must not outlive the test, eating the CPU of the ones after it)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out, err


def result_lines(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return lines


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "params.json").exists())


def finished(trial_dir: Path, steps: int) -> bool:
    return any("evaluation" in r and r["step"] == steps for r in result_lines(trial_dir))


def checkpoints(trial_dir: Path) -> list[Path]:
    """The trial's checkpoint folders whose pack.pt is written."""
    return sorted(p for p in trial_dir.glob("checkpoint_*") if (p / "pack.pt").is_file())


def checkpoint_taken_in(trial_dir: Path) -> bool:
    """The trial's newest checkpoint is one the driver has taken in (its report is in
    result.json, which the driver writes): Tune restores only checkpoints it has recorded, so
    a trial whose worker or node is lost any earlier restarts from scratch (races seen in CI
    and in a fresh clone's run)."""
    saved = checkpoints(trial_dir)
    if not saved:
        return False
    try:
        step = checkpoint.load(saved[-1])["step"]
    except checkpoint.CheckpointError:  # still being written or copied to storage
        return False
    return step in {r["step"] for r in result_lines(trial_dir)}


def checkpointed_unfinished(trial_dir: Path, steps: int) -> bool:
    return bool(checkpoints(trial_dir)) and not finished(trial_dir, steps)


def one_finished_one_checkpointed(steps: int) -> Callable[[list[Path]], bool]:
    """Kill point for the resume tests: one trial done, another checkpointed but unfinished."""
    return lambda dirs: (any(finished(d, steps) for d in dirs)
                         and any(checkpointed_unfinished(d, steps) for d in dirs))


def wait_for(proc: Command, ready: Callable[[], object], timeout: float = 300):
    """Poll `ready()` until it returns something truthy (returned); fail if the study ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"study ended before the awaited point: {proc.communicate()}")
        found = ready()
        if found:
            return found
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the study never reached the awaited point")


def kill_when(proc: Command, experiment: Path, ready, timeout: float = 300) -> None:
    """SIGKILL the whole job once `ready(trial_dirs)` holds, as a scheduler's hard kill (its
    cgroup) does: the driver's process group and the local Ray it started, which runs in a
    group of its own (`study.runner.own_process_group`)."""
    wait_for(proc, lambda: experiment.exists() and ready(trial_dirs(experiment)), timeout)
    ray = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid, _, _ in ray:  # SIGKILLed within microseconds of listing: no pid reused by then
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def descendants(pid: int) -> set[tuple[int, str, str]]:
    """The processes below `pid` (its children, theirs, ...: the Ray a study started), each
    as (pid, start time, command line), the start time telling a reused number apart."""
    parents, seen = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
        seen[int(stat.parent.name)] = (fields[19], command.strip())
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return {(child, *seen[child]) for child in found}


def still_running(processes: set[tuple[int, str, str]], wait: float = 20) -> list[str]:
    """The command lines of `processes` (from `descendants`) still running after up to `wait`
    seconds (zombies count as ended)."""
    deadline = time.monotonic() + wait
    while True:
        running = []
        for pid, started, command in processes:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[19] == started and fields[0] != "Z":
                running.append(command)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


def assert_each_trial_trained_once(experiment: Path, steps: int) -> None:
    """Every trial finished, and none restarted from scratch (one step-0 evaluation each)."""
    for trial in trial_dirs(experiment):
        lines = result_lines(trial)
        assert finished(trial, steps), trial.name
        assert sum(1 for r in lines if r["step"] == 0 and "evaluation" in r) == 1, trial.name


def assert_no_report_lost(experiment: Path, steps: int, every: int) -> None:
    """Every trial's result.json holds a report at each multiple of `every` up to `steps`
    (a trial restarted within a run, by PBT or a retry, must not lose the lines before).
    The one gap allowed is a PBT clone's jump ahead: asynchronous PBT can hand a trial at
    step 100 a donor's checkpoint from step 150, so it next reports at 175 and its steps
    after 100 up to 150 are the donor's history, not its own."""
    for trial in trial_dirs(experiment):
        lines = result_lines(trial)
        skipped = {step for before, line in itertools.pairwise(lines) if line.get("cloned_from")
                   for step in range(before["step"] + 1, line["cloned_at"] + 1)}
        missing = set(range(0, steps + 1, every)) - {r["step"] for r in lines} - skipped
        assert not missing, f"{trial.name}: no report at steps {sorted(missing)}"


def assert_no_trial_errored(experiment: Path) -> None:
    """No attempt of any trial failed: Tune wrote no error.txt (a driver's kill and resume
    must not cost a trial one of its retries)."""
    errored = [d.name for d in trial_dirs(experiment) if (d / "error.txt").exists()]
    assert not errored, f"trials with error.txt: {errored}: " + "; ".join(
        (experiment / name / "error.txt").read_text()[-300:] for name in errored)


def tensorboard_scalars(trial_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of a trial's TensorBoard event files, by tag: (step, value) pairs. Reads the
    TFRecord framing directly (length, its CRC, the Event, its CRC)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(trial_dir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def wandb_run(path: Path) -> tuple[SimpleNamespace, list[tuple[int, dict]]]:
    """The run record (its config as {key: JSON}) and the history (step, {key: value}) of a
    W&B run file: W&B's transaction log, LevelDB's log format (32 KiB blocks of records with a
    7-byte header: CRC, length, kind FULL/FIRST/MIDDLE/LAST) after a 7-byte file header, each
    record a `wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, run, history = header, b"", None, []
    while pos + header <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if left < header or (kind, length) == (0, 0):  # a block's padding
            pos += left
            continue
        pending += data[pos + header:pos + header + length]
        pos += header + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            if record.HasField("run"):
                run = record.run
            elif record.HasField("history"):
                history.append((record.history.step.num,
                                {item.key or "/".join(item.nested_key):
                                 json.loads(item.value_json) for item in record.history.item}))
    assert run is not None, "no run record"
    config = {item.key or "/".join(item.nested_key): item.value_json
              for item in run.config.update}
    return SimpleNamespace(run_id=run.run_id, display_name=run.display_name,
                           project=run.project, run_group=run.run_group,
                           config=config), history
