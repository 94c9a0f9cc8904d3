"""SIGTERM and SIGHUP handled as SIGINT is (study.signals), without a study: the end-to-end
cases, Tune's save and Ray's shutdown, are in test_run.py."""

from __future__ import annotations

import signal

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
