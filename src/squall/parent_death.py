"""Processes that die with their parent: Linux's parent-death signal (``prctl``).

squall's managed servers, the reference platform and its workers are each told to get a
signal when the process that started them dies, so even a parent killed with SIGKILL
leaves no orphan behind. Off Linux these do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2


def die_with_parent(death_signal: int, parent: int) -> None:
    """Have this process sent ``death_signal`` when ``parent`` dies; exit at once if it
    already has (this process was handed to another before the signal was set). Compared
    with ``parent``'s pid, not "is my parent PID 1": a container's entrypoint is, alive."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)


def parent_death_signal() -> int:
    """The signal this process gets when its parent dies; 0 when none was asked for, or
    off Linux."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    found = ctypes.c_int(0)
    if libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(found), 0, 0, 0) != 0:
        return 0
    return found.value
