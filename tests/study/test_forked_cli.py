"""The study tests' command line (`helpers.cli`, forked with the libraries imported) is the one a
user runs: each case's exit code and output equal `python -m study.cli` in a fresh interpreter
given the same environment and working folder; a signal ends it as it ends a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.study.helpers import cli, finish

pytestmark = pytest.mark.integration  # the real command line

CASES = {  # and whether the command names the working folder (or the storage under it)
    "help": (["--help"], False),
    "a usage error": (["data", "verify"], False),
    "a folder relative to the working one": (["status", "exp"], True),
    "storage from the environment": (["run", "quick", "--name", "taken"], True),
    "a spec that is no preset": (["run", "nope"], False),
}


@pytest.mark.parametrize(("args", "names_the_folder"), list(CASES.values()), ids=list(CASES))
def test_a_forked_command_answers_as_a_fresh_interpreter_does(args, names_the_folder,
                                                              tmp_path):
    (tmp_path / "storage" / "taken").mkdir(parents=True)
    env = {**os.environ, "WAE_STUDY_STORAGE": str(tmp_path / "storage")}
    fresh = subprocess.run([sys.executable, "-m", "study.cli", *args], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    forked = finish(cli(*args, env=env, cwd=tmp_path), timeout=120)
    assert forked == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert (str(tmp_path) in forked[1] + forked[2]) == names_the_folder


def test_a_signal_ends_a_forked_command_as_it_ends_a_subprocess(tmp_path):
    """SIGKILL to its process group, as the kill tests send it: the command leads a session of
    its own, and its return code is minus the signal, as Popen's is. (Rendering the dataset:
    a command that runs a while and starts no Ray.)"""
    command = cli("data", "generate", "--out", str(tmp_path / "dsprites.hdf5"))
    deadline = time.monotonic() + 60
    while os.getsid(command.pid) != command.pid:  # until the forked process has called setsid
        assert command.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(command.pid, signal.SIGKILL)
    assert command.wait(timeout=60) == -signal.SIGKILL == command.returncode
    assert command.communicate() == ("", "")
