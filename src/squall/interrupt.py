"""SIGTERM handled as Ctrl-C, so a CI job or ``kill`` that cancels squall keeps what an
interrupted run keeps (the scenarios that finished, the partial one, the report).

While a scenario runs, the engine routes both signals (:data:`STOP_SIGNALS`) itself, in
:mod:`squall.engine.run`; :func:`sigterm_as_ctrl_c` covers the rest of ``squall run``
(starting the services and the platform, between scenarios, writing the results).
:func:`wait_for_child` covers ``squall test``, whose tests run in a child process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
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
    line as that function returns it, as the child writes it. Standard output that is a
    pipe comes through this process too, byte for byte, so that a reader gone away
    (``| head -1``) ends what is printed, not the child: the child would die of it before
    its results were written. A terminal or a file the child writes to itself.
    """
    relay_stdout = _is_pipe(sys.stdout)
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if relay_stdout else None,
        stderr=subprocess.PIPE if rewrite_stderr else None,
    )
    relays = []
    if child.stdout is not None:
        relays.append(_start_relay(_relay_chunks, child.stdout))
    if rewrite_stderr is not None and child.stderr is not None:
        relays.append(_start_relay(_relay_lines, child.stderr, rewrite_stderr))
    if threading.current_thread() is not threading.main_thread():
        return ChildExit(_wait(child, relays), stopped=False)
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
        status = _wait(child, relays)
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return ChildExit(status, stopped)


#: How long to wait, once the child exited, for the rest of its output (a process it
#: started and left running may keep the pipes open for good).
RELAY_DRAIN_S = 2.0


def _is_pipe(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # closed, or no descriptor (captured)
        return False


def _start_relay(target: Callable[..., None], *args: object) -> threading.Thread:
    relay = threading.Thread(target=target, args=args, daemon=True)
    relay.start()
    return relay


def _wait(child: subprocess.Popen[bytes], relays: list[threading.Thread]) -> int:
    status = child.wait()
    deadline = time.monotonic() + RELAY_DRAIN_S
    for relay in relays:
        relay.join(max(0.0, deadline - time.monotonic()))
    return status


def _relay_chunks(stream: IO[bytes]) -> None:
    """Copy ``stream`` to this process's standard output as it comes (pytest's progress
    dots end no line), its bytes unchanged. A failed write drops them and reading goes
    on: the child never blocks on a full pipe nor dies of a broken one."""
    with stream:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            _write_bytes(chunk)


def _write_bytes(chunk: bytes) -> None:
    out = sys.stdout
    if out is None:
        return
    with contextlib.suppress(OSError, ValueError):
        binary = getattr(out, "buffer", None)
        if binary is None:
            out.write(chunk.decode(errors="replace"))
            out.flush()
            return
        out.flush()  # what this process printed first stays first
        binary.write(chunk)
        binary.flush()


def _relay_lines(stream: IO[bytes], rewrite: Callable[[str], str]) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            _write(sys.stderr, rewrite(raw.decode(errors="replace")))


def _write(stream: IO[str] | None, text: str) -> None:
    if stream is None or not text:
        return
    with contextlib.suppress(OSError, ValueError):
        stream.write(text)
        stream.flush()
