"""`wae-study ARGS` as a process forked from one that has already imported what a study command
imports (multiprocessing's fork server, which each test worker starts once), instead of a
fresh interpreter that imports it all again: seconds of CPU per command (torch, pandas,
matplotlib, Optuna), over ~45 commands in the suite.

The forked process is still a command of its own: its own pid and session, the environment,
working folder, argv and `__main__` that `python -m study.cli ARGS` has, its output in files of
its own, its exit code (or the signal that ended it), and the atexit handlers the interpreter
runs at exit (Ray's shutdown among them). `ForkedCommand` answers the `subprocess.Popen` calls
the tests make. What a fresh interpreter alone can show (which modules a command imports:
tests/study/test_startup.py) or needs (a prefix such as `ip netns exec`) runs as a subprocess.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The libraries the commands import, imported once by the fork server (one that fails to import
# is left to the command, as multiprocessing does). Not Ray: it reads its RAY_* settings (token
# authentication among them) when imported, and commands differ in them (joining the shared
# head or starting a Ray of their own); nor the project's modules, which import Ray (and take
# ~0.1 s).
PRELOAD = ["torch", "pandas", "matplotlib.pyplot", "PIL.Image", "scipy.special", "optuna",
           "tensorboardX", __name__]

SERVER = multiprocessing.get_context("forkserver")
SERVER.set_forkserver_preload(PRELOAD)


def start_server() -> None:
    """Start the fork server now, in the environment as it is: the server keeps it, and what
    its libraries read from it when imported (torch's OMP_NUM_THREADS, matplotlib's folders)
    holds for every command forked from it (tests/study/conftest.py starts it before any test
    changes the environment)."""
    multiprocessing.forkserver.ensure_running()


def run_as_main(args: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """In the forked process: become `python -m study.cli ARGS` started with `env` in `cwd`,
    in a session of its own, its output into the files `out` and `err`."""
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(file, fd)
        os.close(file)
    sys.argv = ["study.cli", *args]  # run_module puts the module's file first, as -m does
    try:
        runpy.run_module("study.cli", run_name="__main__", alter_sys=True)
    finally:  # a forked process ends in os._exit, which would skip them
        atexit._run_exitfuncs()


class ForkedCommand:
    """A running `wae-study ARGS` forked from the fork server, with Popen's `pid`, `poll`,
    `wait`, `send_signal`, `communicate` (text) and `returncode`."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="wae-cli-"))
        self.args = args
        self._process = SERVER.Process(
            target=run_as_main, daemon=True,  # ended with the test worker, never waited for
            args=(args, env, cwd, str(self._folder / "out"), str(self._folder / "err")))
        self._process.start()
        self.pid = self._process.pid
        self._output: tuple[str, str] | None = None

    @property
    def returncode(self) -> int | None:
        """The exit code, or minus the signal that ended it; None while it runs."""
        return self._process.exitcode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """(stdout, stderr) once it has ended."""
        self.wait(timeout)
        if self._output is None:
            self._output = ((self._folder / "out").read_text(),
                            (self._folder / "err").read_text())
            shutil.rmtree(self._folder)
        return self._output
