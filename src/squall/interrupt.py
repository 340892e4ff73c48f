"""SIGTERM handled as Ctrl-C, so a CI job or ``kill`` that cancels squall keeps what an
interrupted run keeps (the scenarios that finished, the partial one, the report).

While a scenario runs, the engine routes both signals itself (``STOP_SIGNALS`` in
:mod:`squall.engine.run`); :func:`sigterm_as_ctrl_c` covers the rest of ``squall run``
(starting the platform, between scenarios). :func:`wait_for_child` covers ``squall test``,
whose tests run in a child process.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def on_sigterm(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """While inside, SIGTERM calls ``handler`` (in the main thread only: elsewhere Python
    cannot install one); the previous handler is back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def sigterm_as_ctrl_c() -> contextlib.AbstractContextManager[None]:
    """While inside, SIGTERM raises SIGINT: whatever handles Ctrl-C then handles it."""
    return on_sigterm(_raise_sigint)


def _raise_sigint(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


def wait_for_child(argv: list[str]) -> int:
    """Run ``argv`` and return its exit status, letting it finish when interrupted.

    Ctrl-C reaches the child from the terminal (same process group), so this process only
    keeps waiting while the child writes what it has; a SIGTERM sent to this process is
    passed on to the child as SIGINT, so it stops the same way.
    """
    child = subprocess.Popen(argv)
    if threading.current_thread() is not threading.main_thread():
        return child.wait()

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)

    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
