"""SIGTERM handled as Ctrl-C, so a CI job or ``kill`` that cancels squall keeps what an
interrupted run keeps (the scenarios that finished, the partial one, the report).

While a scenario runs, the engine routes both signals (:data:`STOP_SIGNALS`) itself, in
:mod:`squall.engine.run`; :func:`sigterm_as_ctrl_c` covers the rest of ``squall run``
(starting the services and the platform, between scenarios, writing the results).
:func:`wait_for_child` covers ``squall test``, whose tests run in a child process.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import IO

#: The signals that stop a run (Ctrl-C, and a CI job or ``kill`` cancelling it), each with
#: the ``interrupted_reason`` the result then gives.
STOP_SIGNALS = {signal.SIGINT: "sigint", signal.SIGTERM: "sigterm"}


def by_signal(interrupted_reason: object) -> bool:
    """Whether a run's ``interrupted_reason`` is one of :data:`STOP_SIGNALS`': its load was
    cut short by Ctrl-C or SIGTERM, so what it measured is partial."""
    return interrupted_reason in STOP_SIGNALS.values()


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


@contextlib.contextmanager
def deferred_stop(note: str | None = None) -> Iterator[Callable[[], bool]]:
    """While inside, Ctrl-C (and SIGTERM, under :func:`sigterm_as_ctrl_c`) is noted rather
    than raised, so the work inside ends whole; the function yielded says whether one came.
    ``note`` is written to standard error at the first one. Main thread only (elsewhere
    nothing changes)."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def noted(signum: int, frame: FrameType | None) -> None:
        if note is not None and not came:
            sys.stderr.write(f"{note}\n")
        came.append(signum)

    previous = signal.signal(signal.SIGINT, noted)
    try:
        yield lambda: bool(came)
    finally:
        signal.signal(signal.SIGINT, previous)


def sigterm_as_ctrl_c() -> contextlib.AbstractContextManager[None]:
    """While inside, SIGTERM raises SIGINT: whatever handles Ctrl-C then handles it."""
    return on_sigterm(_raise_sigint)


def _raise_sigint(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


@dataclass(frozen=True)
class ChildExit:
    """How a child run by :func:`wait_for_child` ended."""

    #: Its exit status (negative: the signal that killed it).
    status: int
    #: Whether this process got Ctrl-C or SIGTERM while it waited.
    stopped: bool


def wait_for_child(
    argv: list[str], *, rewrite_stderr: Callable[[str], str] | None = None
) -> ChildExit:
    """Run ``argv`` and return how it ended, letting it finish when interrupted.

    Ctrl-C reaches the child from the terminal (same process group), so this process only
    keeps waiting while the child writes what it has; a SIGTERM sent to this process is
    passed on to the child as SIGINT, so it stops the same way. Either is noted in
    :attr:`ChildExit.stopped`.

    With ``rewrite_stderr``, the child's standard error comes through this process, each
    line as that function returns it, as the child writes it.
    """
    child = subprocess.Popen(argv, stderr=subprocess.PIPE if rewrite_stderr else None)
    relay = None
    if rewrite_stderr is not None and child.stderr is not None:
        relay = threading.Thread(
            target=_relay_lines, args=(child.stderr, rewrite_stderr), daemon=True
        )
        relay.start()
    if threading.current_thread() is not threading.main_thread():
        return ChildExit(_wait(child, relay), stopped=False)
    stopped = False

    def note(signum: int, frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True

    def forward(signum: int, frame: FrameType | None) -> None:
        note(signum, frame)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)

    previous_int = signal.signal(signal.SIGINT, note)
    previous_term = signal.signal(signal.SIGTERM, forward)
    try:
        status = _wait(child, relay)
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return ChildExit(status, stopped)


#: How long to wait, once the child exited, for the rest of its standard error (a process
#: it started and left running may keep the pipe open for good).
RELAY_DRAIN_S = 2.0


def _wait(child: subprocess.Popen[bytes], relay: threading.Thread | None) -> int:
    status = child.wait()
    if relay is not None:
        relay.join(RELAY_DRAIN_S)
    return status


def _relay_lines(stream: IO[bytes], rewrite: Callable[[str], str]) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            sys.stderr.write(rewrite(raw.decode(errors="replace")))
            sys.stderr.flush()
