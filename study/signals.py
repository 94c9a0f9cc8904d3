"""SIGTERM and SIGHUP stop a study as Ctrl-C does, exiting 128 + the signal's number.

A scheduler's or `timeout`'s SIGTERM (or a closed terminal's SIGHUP) is passed on to whatever
handles SIGINT at that moment: during `Tuner.fit` Tune's handler, which stops the trials and
saves the experiment's state, so the driver prints its resume line and `ray.shutdown` (at
exit) ends the local Ray it started; before and after, Python's, which raises
KeyboardInterrupt. Ray installs its own SIGTERM handlers in `ray.init` (a `sys.exit`, then
its C++ core's failure handler, which aborts with a stack dump and leaves Ray's agents
running): `install` is called again after it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOPS = (signal.SIGTERM, signal.SIGHUP)
received: list[int] = []  # the stop signals caught in this process, in order


def as_interrupt(signum: int, frame: FrameType | None) -> None:
    """Handle the first stop signal as SIGINT is handled now, remembering its number. Later
    ones are ignored: `timeout` sends its SIGTERM to the driver and again to its process
    group, and a second SIGINT to Tune skips saving the state (a second Ctrl-C still does)."""
    received.append(signum)
    if len(received) > 1:
        return
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):  # SIG_IGN or SIG_DFL: as Python's own
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


def install() -> None:
    """Route SIGTERM and SIGHUP to `as_interrupt` (again after `ray.init` replaced them)."""
    for signum in STOPS:
        signal.signal(signum, as_interrupt)


@contextmanager
def stopping_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP interrupt as Ctrl-C; the previous handlers after."""
    previous = {signum: signal.getsignal(signum) for signum in STOPS}
    received.clear()
    install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interrupted_code() -> int:
    """The exit code of an interrupted command: 128 + the first stop signal's number, or
    130 (Ctrl-C's) when none came."""
    return 128 + received[0] if received else 130
