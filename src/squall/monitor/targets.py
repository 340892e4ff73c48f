"""Which processes make up a monitored group: the target, PostgreSQL, Redis, the generator.

A group is described by root PIDs and/or listening TCP ports (:class:`GroupSpec`)
and re-discovered on every sample, because servers start and retire workers
during a run: a uvicorn master forks workers, PostgreSQL forks a backend per
connection. Roots are followed down to all their descendants.

Port lookup uses the system-wide socket table (``psutil.net_connections``).
Where that does not name the owning process (other users' sockets without
privileges, or macOS without root), it falls back to asking each process for its
own sockets, which finds every process the current user may inspect.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]  # no stubs installed

#: Group names used throughout reports.
TARGET = "target"
POSTGRES = "postgres"
REDIS = "redis"
GENERATOR = "generator"
#: The largest PID a group may name (PIDs are C ints; Linux's own limit is lower).
MAX_PID = 2**31 - 1
#: The largest TCP port.
MAX_PORT = 65535


@dataclass(frozen=True)
class GroupSpec:
    """A process group: root ``pids`` and processes listening on ``ports``, with descendants."""

    name: str
    pids: tuple[int, ...] = ()
    ports: tuple[int, ...] = ()
    children: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("GroupSpec needs a name, e.g. 'target'")
        if not self.pids and not self.ports:
            raise ValueError(
                f"group {self.name!r} has neither pids nor ports; give at least one to find it"
            )
        # The same ranges as [monitor] pids / ports: psutil refuses a PID below 1 only
        # when the monitor first reads it, mid-run.
        bad_pids = [p for p in self.pids if not _in_range(p, 1, MAX_PID)]
        if bad_pids:
            raise ValueError(
                f"group {self.name!r}: {bad_pids} are not PIDs; give process ids in "
                f"1..{MAX_PID}, e.g. subprocess.Popen(...).pid"
            )
        bad_ports = [p for p in self.ports if not _in_range(p, 1, MAX_PORT)]
        if bad_ports:
            raise ValueError(
                f"group {self.name!r}: {bad_ports} are not TCP ports; give ports in 1..{MAX_PORT}"
            )


def _in_range(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def missing_pids(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that name no running process on this machine."""
    return [pid for pid in pids if not psutil.pid_exists(pid)]


def squall_and_its_ancestors() -> set[int]:
    """This process and those it was started from (its shell, PID 1): never the target's."""
    return {os.getpid(), *(p.pid for p in psutil.Process().parents())}


def pids_problem(pids: Iterable[int]) -> str | None:
    """What is wrong with ``pids`` as the target's root processes ([monitor] pids), or None.

    A PID that names no process is named; so is this process or one of its ancestors
    (PID 1, the shell squall runs in): with its descendants it would count every process
    of the session, squall's own load generators among them."""
    pids = list(pids)
    missing = missing_pids(pids)
    if missing:
        return (
            f"no process {', '.join(map(str, missing))} runs on this machine; "
            "give the PIDs of the target's processes, or its listening ports in monitor.ports"
        )
    own = squall_and_its_ancestors()
    ours = [pid for pid in pids if pid in own]
    if ours:
        return (
            f"{', '.join(map(str, ours))} runs squall itself (this process or one it was "
            "started from): with its descendants it would count squall's own processes and "
            "every other one started there; give the PIDs of the target's processes, or its "
            "listening ports in monitor.ports"
        )
    return None


def target_group(pids: Sequence[int] = (), ports: Sequence[int] = ()) -> GroupSpec:
    """The system under test, by the PIDs squall started or an external target's PID/port."""
    return GroupSpec(TARGET, tuple(pids), tuple(ports))


def generator_group() -> GroupSpec:
    """This process and its worker children.

    Servers squall started are children too; list their groups before this one
    so that each process is counted once, in the group that claims it first.
    """
    return GroupSpec(GENERATOR, (os.getpid(),))


def standard_groups(
    *,
    target_pids: Sequence[int] = (),
    target_ports: Sequence[int] = (),
    postgres_pid: int | None = None,
    redis_pid: int | None = None,
    generator: bool = True,
) -> list[GroupSpec]:
    """Target, PostgreSQL, Redis and the generator, in the order that claims processes right."""
    groups: list[GroupSpec] = []
    if target_pids or target_ports:
        groups.append(target_group(target_pids, target_ports))
    if postgres_pid is not None:
        groups.append(GroupSpec(POSTGRES, (postgres_pid,)))
    if redis_pid is not None:
        groups.append(GroupSpec(REDIS, (redis_pid,)))
    if generator:
        groups.append(generator_group())
    return groups


def _listens(proc: psutil.Process, ports: set[int]) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(
            conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports
            for conn in proc.net_connections(kind="inet")
        )
    return False


def _sharing(pid: int, ports: set[int], own: set[int]) -> set[int]:
    """``pid`` and the processes it shares its listening socket with, as a pre-fork server
    does: the ancestors that hold it too, and their siblings that hold it (their
    descendants are the group's anyway). Squall's own ancestors (``own``) are left out."""
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(pid)
        while (
            (parent := top.parent()) is not None
            and parent.pid not in own
            and _listens(parent, ports)
        ):
            top = parent
        holders = {pid, top.pid}
        if parent is not None:
            holders.update(
                sibling.pid
                for sibling in parent.children()
                if sibling.pid not in holders and _listens(sibling, ports)
            )
        return holders
    return {pid}


def listening_pids(ports: Iterable[int]) -> set[int]:
    """PIDs of the processes with a TCP socket listening on any of ``ports``.

    The system-wide table names one process per socket; a socket several processes share
    (a pre-fork server's master and workers) is followed to the others from there. Squall
    and the processes it was started from are never among them: a socket they hold (one
    passed on by a socket-activating parent: systemd, a supervisor) would make the target
    group every process of the session, squall's own load generators and servers too."""
    wanted = set(ports)
    if not wanted:
        return set()
    found: set[int] = set()
    unresolved = set(wanted)
    try:
        for conn in psutil.net_connections(kind="inet"):
            listening = conn.status == psutil.CONN_LISTEN and conn.laddr
            if listening and conn.laddr.port in wanted and conn.pid is not None:
                found.add(conn.pid)
                unresolved.discard(conn.laddr.port)
    except psutil.AccessDenied:
        pass
    if unresolved:  # the table hides other users' processes from a non-root squall
        for proc in psutil.process_iter():
            if _listens(proc, unresolved):
                found.add(proc.pid)
    own = squall_and_its_ancestors()
    found -= own
    return set().union(*(_sharing(pid, wanted, own) for pid in found)) if found else found


def discover(spec: GroupSpec) -> list[psutil.Process]:
    """The group's live processes now: roots, port owners and (if asked) their descendants."""
    roots: dict[int, psutil.Process] = {}
    for pid in (*spec.pids, *sorted(listening_pids(spec.ports))):
        if pid in roots:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            roots[pid] = psutil.Process(pid)
    found = dict(roots)
    if spec.children:
        for proc in roots.values():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
    return list(found.values())
