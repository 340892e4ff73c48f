"""Processes that take turns on one core, so a slow spell of the machine hits them all alike.

Clients measured one after another on a shared machine see different machines: the
host's slow spells last seconds, and a client that runs in one can measure a fifth
slower than the same client a minute later. :func:`take_turns` lets several
processes run one at a time in short turns instead (the others held with
``SIGSTOP``), so over a run each sees the same mix of fast and slow moments. A
stopped process uses no CPU time, so its round trips per CPU-second are those of
its own turns; its wall-clock rate is not (it counts the others' turns).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

#: How long each process runs before the next one's turn.
TURN_S = 0.5


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    # A process that has exited but is not yet reaped still owns its pid, so this
    # cannot reach another process; one that just exited is not an error.
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)


def take_turns(
    processes: Sequence[subprocess.Popen[bytes]], *, limit_s: float, turn_s: float = TURN_S
) -> int:
    """Run ``processes`` one at a time, ``turn_s`` each in turn, until all have exited.

    All but the first are stopped at once; each turn continues one process and stops it
    again when the turn ends (a process that exits in its turn ends the turn early).
    After ``limit_s`` seconds, or on any error, every process still alive is continued
    and left running for the caller to wait for or kill. Returns the turns taken.
    """
    deadline = time.monotonic() + limit_s
    live = [process for process in processes if process.poll() is None]
    turns = 0
    try:
        for process in live[1:]:
            _signal(process, signal.SIGSTOP)
        while live and time.monotonic() < deadline:
            current = live[turns % len(live)]
            _signal(current, signal.SIGCONT)
            try:
                current.wait(timeout=max(0.0, min(turn_s, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                _signal(current, signal.SIGSTOP)
            turns += 1
            live = [process for process in live if process.poll() is None]
    finally:
        for process in processes:
            if process.poll() is None:
                _signal(process, signal.SIGCONT)
    return turns
