"""What a squall killed outright (SIGKILL, out of memory) leaves behind, and its sweep.

A squall that stops removes the folders of its embedded servers and drops the databases
it created; one killed outright cannot. Its servers die with it (see
:mod:`squall.services.process`), their files and databases do not. So each carries an
:class:`Owner` record naming the process that made it: its host, its PID and its start
time, since a PID alone is reused. The next squall that makes one of the same kind
removes those whose owner is provably gone: a process of this host (and of its PID
namespace) that no longer runs, or whose PID another process now has. Anything without a
record, with one it cannot read, or with another host's or PID namespace's, is left
alone; so is an owner it may not inspect.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed

#: The owner record in each folder squall makes for a server.
OWNER_FILE = "squall-owner.json"

#: How far apart two readings of one process's start may be. Both are measured from the
#: host's boot (unaffected by clock changes) and read in clock ticks of 10 ms, but the
#: boot time itself is whole seconds: a second either way is the same start. A process
#: that took a dead owner's PID within it only puts a sweep off.
_SAME_START_S = 2.0

#: The servers squall runs in its folders, and the signal that stops each at once (a
#: postmaster's fast shutdown; valkey-server's shutdown, which saves nothing here).
_SERVERS = {"postgres": signal.SIGINT, "valkey-server": signal.SIGTERM}

#: How long the servers left in a stale folder get to stop; the folder stays for the next
#: sweep if they do not.
_STOP_TIMEOUT_S = 15.0


def note(message: str) -> None:
    """Say what a sweep did, or why it could not, on one line of standard error."""
    print(f"squall: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Owner:
    """The process that made a folder or a database: who may sweep it once it is gone."""

    host: str
    pid: int
    #: When the process started, in seconds since the epoch (psutil's ``create_time``).
    started: float
    #: When the host booted, as read with ``started``: the start relative to it does
    #: not move when the clock is set.
    boot: float
    #: The PID namespace the PID belongs to (the inode of ``/proc/self/ns/pid``); None where
    #: there is none to read, and in records older squalls wrote. Containers sharing the
    #: host's network share its name too, but not its PIDs.
    pid_namespace: int | None = None

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        process = psutil.Process()
        started = process.create_time()
        return cls(socket.gethostname(), process.pid, started, psutil.boot_time(), pid_namespace())

    def to_json(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "started": self.started,
                "boot": self.boot,
                "pid_namespace": self.pid_namespace,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Owner | None:
        """The record ``text`` holds; None when it holds none (not JSON, a field missing
        or of the wrong type)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        host, pid, started, boot = (data.get(key) for key in ("host", "pid", "started", "boot"))
        if not isinstance(host, str) or type(pid) is not int or pid <= 0:
            return None
        if isinstance(started, bool) or not isinstance(started, int | float):
            return None
        if isinstance(boot, bool) or not isinstance(boot, int | float):
            return None
        namespace = data.get("pid_namespace")
        if namespace is not None and type(namespace) is not int:
            return None
        return cls(host, pid, float(started), float(boot), namespace)

    @property
    def since_boot(self) -> float:
        return self.started - self.boot

    def ours(self) -> bool:
        """Whether the owner is (or was) a process of this host whose PID this process can
        look up: one of another PID namespace (a container sharing the host's name) is
        not, since its PID names another process here, or none."""
        if self.host != socket.gethostname():
            return False
        return self.pid_namespace is None or self.pid_namespace == pid_namespace()

    def running(self) -> bool:
        """Whether the owner runs on this host: its PID is a process that started when the
        owner did and has not exited. One this process may not inspect counts as running."""
        try:
            process = psutil.Process(self.pid)
            since_boot = process.create_time() - psutil.boot_time()
            if abs(since_boot - self.since_boot) > _SAME_START_S:
                return False  # the PID is another process's now
            return bool(process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:  # no such PID, or a zombie of it
            return False
        except psutil.AccessDenied:
            return True

    def gone(self) -> bool:
        """Whether the owner was a process of this host that runs no more: what it made is
        stale. Another host's owner is never gone, as far as this host can tell."""
        return self.ours() and not self.running()

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started).isoformat(sep=" ", timespec="seconds")
        return f"process {self.pid} on {self.host}, started {started}"


def pid_namespace() -> int | None:
    """This process's PID namespace (the inode of ``/proc/self/ns/pid``), None without one."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def folder_owner(folder: Path) -> Owner | None:
    """The owner record of ``folder``; None for one without a readable record, for a
    symbolic link and for a folder of another user (unless this process is root)."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    if os.geteuid() != 0 and folder.stat().st_uid != os.geteuid():
        return None
    try:
        with (folder / OWNER_FILE).open(encoding="utf-8", errors="replace") as record:
            return Owner.from_json(record.read(4096))
    except OSError:
        return None


def owned_folder(prefix: str) -> Path:
    """A new folder ``prefix…`` under the temporary folder (``TMPDIR``) holding this
    process's owner record, made once the stale folders of ``prefix`` there are swept
    (their space freed first). An ``OSError`` when it cannot be made."""
    sweep_folders(Path(tempfile.gettempdir()), prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (folder / OWNER_FILE).write_text(Owner.current().to_json(), encoding="utf-8")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def sweep_folders(parent: Path, prefix: str) -> None:
    """Remove the folders ``parent/prefix*`` whose owner is gone, stopping the servers
    still running in them first; one line on standard error for each. Never raises: a
    folder that cannot be removed is a warning, and the next sweep tries again."""
    try:
        folders = sorted(parent.glob(f"{glob.escape(prefix)}*"))
    except OSError as exc:
        note(f"warning: cannot look for leftovers in {parent}: {exc}")
        return
    for folder in folders:
        try:
            owner = folder_owner(folder)
            if owner is None or not owner.gone():
                continue
            busy = _stop_servers(folder, owner)
            if busy is not None:
                note(f"warning: left {folder} of {owner.describe()}, which is gone: {busy}")
                continue
            _remove(folder)
            note(f"removed {folder}: left by {owner.describe()}, which is gone")
        except Exception as exc:  # a sweep never stops the run that makes it
            note(f"warning: could not sweep {folder}: {exc}")


def _remove(folder: Path) -> None:
    """Remove ``folder``; another sweep removing it at the same time is no failure."""
    try:
        shutil.rmtree(folder)
    except OSError:
        if folder.exists():
            raise


def _works_in(process: psutil.Process, folder: Path) -> bool:
    try:
        cwd = Path(process.cwd())
    except psutil.Error:  # gone, or another user's
        return False
    return cwd == folder or folder in cwd.parents


def _stop_servers(folder: Path, owner: Owner) -> str | None:
    """Stop what still runs in ``folder`` (a postmaster and its backends in the data
    directory, a valkey-server in the folder: each works in its folder) when it is a
    server ``owner`` may have started; None once nothing runs there, else why the folder
    must stay."""
    where = folder.resolve()  # as the kernel names the working directories
    found = {
        process: _name(process) for process in psutil.process_iter() if _works_in(process, where)
    }
    for process, name in found.items():
        if name not in _SERVERS or not _started_after(process, owner):
            return f"process {process.pid} ({name}) works in it"
    pids = {process.pid for process in found}
    for process, name in found.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.ppid() not in pids:  # the postmaster, not its backends
                note(f"stopping {name} (process {process.pid}) left running in {folder}")
                process.send_signal(_SERVERS[name])
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while (running := [p for p in found if _runs(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running:
        return f"process {running[0].pid} did not stop within {_STOP_TIMEOUT_S:.0f} s"
    return None


def _name(process: psutil.Process) -> str:
    try:
        return str(process.name())
    except psutil.Error:
        return "?"


def _started_after(process: psutil.Process, owner: Owner) -> bool:
    """Whether ``process`` started after ``owner`` did: one the owner may have started."""
    try:
        since_boot = process.create_time() - psutil.boot_time()
    except psutil.Error:
        return False
    return bool(since_boot >= owner.since_boot - _SAME_START_S)


def _runs(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    return False
