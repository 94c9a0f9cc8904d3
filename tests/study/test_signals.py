"""SIGTERM and SIGHUP handled as SIGINT is (study.signals), and the process group the local
Ray is started in (study.runner.own_process_group), without a study: the end-to-end cases,
Tune's save and Ray's shutdown, are in test_run.py."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from study.signals import interrupted_code, stopping_as_interrupt


def test_the_first_stop_signal_acts_as_sigint_and_names_the_exit_code():
    """Tune's SIGINT handler is called once (a repeat, as `timeout` sends, would make Tune
    skip its save), the code is 128 + the first signal, and the handlers are put back."""
    calls = []
    before = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with stopping_as_interrupt():
            assert interrupted_code() == 130
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGHUP)
            assert calls == [signal.SIGINT]
            assert interrupted_code() == 143
        assert signal.getsignal(signal.SIGTERM) == before
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_tune_a_stop_signal_raises_keyboard_interrupt():
    """With Python's own SIGINT handler, as outside Tune (a Tune run earlier in this process
    may have left its handler in place)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stopping_as_interrupt(), pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGHUP)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted_code() == 129


# A driver alone in a group whose leader has exited: `sh` leads the group, starts the driver
# in the background and exits at once, as `bash -c 'wae-study run ... &'` does.
ORPHANED_GROUP = """
import os, time
time.sleep(1)  # sh has exited and been reaped: the driver is its group's last member
from study.runner import own_process_group
home = os.getpgrp()
with own_process_group():
    inside = os.getpgrp()
    os.system("true")  # a process started inside, as Ray's are
print(home != os.getpid(), inside != home, os.getpgrp() == os.getpid())
"""


def test_a_driver_whose_group_is_gone_leads_a_group_of_its_own_after_starting_ray():
    """Coming back from the group Ray was started in fails where the driver's group is gone;
    it then leads its own (the study crashed with PermissionError at start)."""
    shell = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$0" &', ORPHANED_GROUP],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             process_group=0)
    assert shell.wait(timeout=10) == 0  # reaped: a zombie leader would keep the group alive
    out, err = shell.communicate(timeout=60)  # the driver's, once it has exited
    assert out.split() == ["True", "True", "True"], out + err
