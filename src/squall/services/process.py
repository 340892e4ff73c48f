"""Child processes that never outlive the process that started them.

Every server squall starts (PostgreSQL, Valkey, the reference platform) goes
through :func:`spawn`. The child is put in its own process group and asked to
receive a signal when its parent dies (Linux ``PR_SET_PDEATHSIG``), so even a
parent killed with SIGKILL leaves no orphan behind. :meth:`ManagedProcess.stop`
is the orderly path: a polite signal, a grace period, then SIGKILL for the group.

Call :func:`spawn` from the main thread: the kernel sends the death signal when
the *thread* that forked the child exits, not only the process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from squall.parent_death import die_with_parent


def child_setup(death_signal: int) -> Callable[[], None]:
    """A ``preexec_fn`` that has the child sent ``death_signal`` when its parent (the
    process calling this) dies."""
    parent = os.getpid()

    def setup() -> None:
        die_with_parent(death_signal, parent)

    return setup


class ProcessStartError(RuntimeError):
    """A managed process exited or never became ready; the message holds its log tail.
    ``disk_full`` when the cause found is a full disk (the message leads with it)."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


#: How the C library words ENOSPC: what initdb, postgres and valkey-server print (in the C
#: locale they are given) and what an ``OSError`` of a full disk says.
NO_SPACE = os.strerror(errno.ENOSPC)


def full_disk(output: str, folder: Path, fix: str | None = None) -> str | None:
    """The cause and its fix when ``output`` (a tool's, or an ``OSError``'s text) says no
    space is left on a device: the disk of ``folder`` is full, free space there or
    ``fix``; None when it says nothing of the kind."""
    if NO_SPACE.lower() not in output.lower():
        return None
    fix = "" if fix is None else f", or {fix}"
    return f"the disk of {folder} is full ({NO_SPACE}). Free space there{fix}."


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process group politely, then by force; return the exit code."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children of the leader (e.g. uvicorn workers) may linger a moment.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.popen.returncode

    def __repr__(self) -> str:
        state = "running" if self.running() else f"exited({self.popen.returncode})"
        return f"<ManagedProcess {self.name} pid={self.pid} {state} log={self.log_path}>"


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
    death_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start ``argv`` as a managed child whose output goes to ``log_path``."""
    log_file = log_path.open("ab")
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        user=user,
        start_new_session=True,
        preexec_fn=child_setup(death_signal),
    )
    return ManagedProcess(
        name=name, popen=popen, log_path=log_path, stop_signal=stop_signal, _log_file=log_file
    )


def wait_until(
    ready: Callable[[], bool],
    *,
    process: ManagedProcess,
    timeout: float,
    what: str,
    full_disk_fix: str | None = None,
) -> None:
    """Poll ``ready`` until it holds; on death or timeout fail with the log tail, the cause
    first when the log says the disk of the log's folder is full (with ``full_disk_fix``
    beside freeing space)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise _not_ready(
                f"{process.name} exited with code {process.popen.returncode} before {what}",
                process,
                full_disk_fix,
            )
        if ready():
            return
        time.sleep(0.05)
    raise _not_ready(
        f"{process.name} did not become ready ({what}) within {timeout:.0f} s",
        process,
        full_disk_fix,
    )


def _not_ready(
    headline: str, process: ManagedProcess, full_disk_fix: str | None
) -> ProcessStartError:
    tail = process.log_tail()
    cause = full_disk(tail, process.log_path.parent, full_disk_fix)
    return ProcessStartError(
        f"{headline}{'.' if cause is None else f': {cause}'}\n"
        f"Last lines of {process.log_path}:\n{tail}",
        disk_full=cause is not None,
    )
