"""The resource monitor: an asyncio task sampling process groups with psutil.

Every ``interval_s`` it re-discovers each group's processes (see
:mod:`squall.monitor.targets`) and records, per group, RSS, CPU (% of one core,
summed), threads, file descriptors and inet sockets. :meth:`ResourceMonitor.stop`
takes a last sample and returns a :class:`~squall.monitor.report.MonitorReport`.

Design notes:

- The psutil calls run in a worker thread (``asyncio.to_thread``) so that a
  slow ``/proc`` read never stalls the load generator's event loop.
- Time is injected: ``clock`` (monotonic seconds) and ``sleep`` (an awaitable)
  let tests drive the loop without waiting.
- Memory is bounded: each group keeps at most ``max_samples`` samples
  (:class:`~squall.monitor.stats.BoundedSeries` halves the series when full),
  the set of PIDs seen per group is capped at ``MAX_PIDS``, and the CPU-time
  cache only holds processes alive at the last sample.
- Processes that exit between discovery and reading (``NoSuchProcess``) are
  skipped; readings the OS refuses (``AccessDenied``) count as zero and are
  counted in ``GroupReport.denied``.
- A sample the OS cannot give at all (``/proc`` unreadable: the open-files
  limit reached under load) is skipped and counted in
  ``MonitorReport.failed_samples``; sampling goes on, and :meth:`ResourceMonitor.stop`
  still returns the report, so the scenario keeps what it measured.
- A process belongs to the first group that claims it, in the order given, so
  servers that are children of the generator are not counted twice when their
  group is listed before the generator's.
- CPU % is measured from CPU-time deltas between two samples; a process seen for the
  first time contributes 0 % on that sample, unless it was born since the sample before
  (then all of its CPU time), and the time of processes gone between two samples comes
  back through their parent's children times (see :class:`PsutilProbe`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psutil  # type: ignore[import-untyped]  # no stubs installed

from squall.monitor.report import GroupReport, MonitorReport
from squall.monitor.stats import BoundedSeries, ResourceSample
from squall.monitor.targets import GroupSpec, discover

MAX_PIDS = 10_000
_MB = 1024.0 * 1024.0
T = TypeVar("T")

#: The shortest interval between samples: a sample reads every process of every group.
MIN_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Reading:
    """One group at one instant, before it becomes a :class:`ResourceSample`."""

    rss_mb: float
    cpu_percent: float
    threads: int
    open_files: int
    sockets: int
    pids: tuple[int, ...]
    denied: int = 0


class Probe(Protocol):
    """Reads every group at time ``now`` (seconds on the monitor's clock)."""

    def read(self, groups: Sequence[GroupSpec], now: float) -> Mapping[str, Reading]: ...


class MonitorError(RuntimeError):
    """The monitor was used out of order (e.g. started twice)."""


@dataclass(frozen=True)
class _Seen:
    """A process's cumulative CPU seconds (its own, and its waited-for children's) as last
    read, and its parent."""

    cpu: float
    children: float
    ppid: int


class PsutilProbe:
    """Reads process groups with psutil; keeps CPU times between samples for deltas.

    A process's CPU is its CPU-time delta between two samples. One born since the sample
    before counts all of its CPU time. The time of processes gone between two samples (the
    stretch since their last sample, or all of it for one that lived less than an interval)
    is recovered from their parent's ``children_user + children_system``, which grows by
    a child's whole CPU time once it is waited for: the growth less what was read of the
    children that left, charged to the parent's group. Without it, a target that runs its
    work in short-lived processes (a pool replacing its workers, a helper per request)
    read as nearly idle.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], _Seen] = {}
        #: The previous read: its time on the monitor's clock and on the wall clock.
        self._last: tuple[float, float] | None = None
        #: By parent PID: CPU seconds read of its children that left but that its children
        #: times do not hold yet (not yet waited for: zombies at the last read).
        self._unreaped: dict[int, float] = {}

    def read(self, groups: Sequence[GroupSpec], now: float) -> dict[str, Reading]:
        sockets = _sockets_by_pid()
        wall = time.time()
        claimed: set[int] = set()
        current: dict[tuple[int, float], _Seen] = {}
        partial: dict[str, tuple[Reading, list[tuple[int, float]]]] = {}
        for spec in groups:
            procs = [p for p in discover(spec) if p.pid not in claimed]
            claimed.update(p.pid for p in procs)
            partial[spec.name] = self._read_group(procs, sockets, current)
        # What was read of the processes gone since, by parent: their parent's children
        # times include it once they are waited for.
        read_of_gone = dict(self._unreaped)
        for key, last in self._seen.items():
            if key not in current:
                # Its children's times go into its parent's with its own: charged already
                # through it, they are what was read of it too.
                gone = last.cpu + last.children
                read_of_gone[last.ppid] = read_of_gone.get(last.ppid, 0.0) + gone
        self._unreaped = {}
        # A process first seen now whose parent was seen last time was born since: the
        # group's descendants are all found at every sample (create_time cannot tell: on
        # Linux it is off by up to a second, built on the boot time's whole second).
        born = _born_since({key[0] for key in self._seen}, current)
        span = now - self._last[0] if self._last is not None else 0.0
        readings: dict[str, Reading] = {}
        for name, (reading, keys) in partial.items():
            seconds = sum(self._cpu_since(key, current[key], read_of_gone, born) for key in keys)
            percent = seconds / span * 100.0 if span > 0 else 0.0
            readings[name] = dataclasses.replace(reading, cpu_percent=percent)
        self._seen = current  # forget processes that are gone
        self._last = (now, wall)
        return readings

    def _cpu_since(
        self,
        key: tuple[int, float],
        now: _Seen,
        read_of_gone: Mapping[int, float],
        born: set[int],
    ) -> float:
        """CPU seconds ``key`` (and its children that left) used since the last read."""
        before = self._seen.get(key)
        if before is not None:
            own = max(0.0, now.cpu - before.cpu)
            waited = max(0.0, now.children - before.children)
            already = read_of_gone.get(key[0], 0.0)
            if already > waited:  # some are not waited for yet: their time comes later
                self._unreaped[key[0]] = already - waited
            return own + max(0.0, waited - already)
        if self._last is not None and (key[0] in born or key[1] > self._last[1] + 1):
            return now.cpu  # born since the last read: all of its time is in this interval
        return 0.0  # first seen, older: its time before now is not this interval's

    def _read_group(
        self,
        procs: Sequence[psutil.Process],
        sockets: Mapping[int, int] | None,
        current: dict[tuple[int, float], _Seen],
    ) -> tuple[Reading, list[tuple[int, float]]]:
        rss = 0.0
        threads = files = socks = denied = 0
        pids: list[int] = []
        keys: list[tuple[int, float]] = []
        for proc in procs:
            try:
                one = _read_process(proc, sockets)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # exited since discovery
            pids.append(proc.pid)
            rss += one.rss_mb
            threads += one.threads
            files += one.open_files
            socks += one.sockets
            denied += 1 if one.denied else 0
            if one.cpu_seconds is not None:
                key = (proc.pid, one.created)
                current[key] = _Seen(one.cpu_seconds, one.children_seconds, one.ppid)
                keys.append(key)
        return Reading(rss, 0.0, threads, files, socks, tuple(pids), denied), keys


def _born_since(seen_before: set[int], current: Mapping[tuple[int, float], _Seen]) -> set[int]:
    """The PIDs first read now whose parent was read last time, or was born since itself (a
    helper's helper): they did not run at the last read, since a group's descendants are
    all found at every read."""
    new = {key[0]: seen.ppid for key, seen in current.items() if key[0] not in seen_before}
    born: set[int] = set()
    while True:
        found = {pid for pid, ppid in new.items() if ppid in seen_before or ppid in born}
        if found <= born:
            return born
        born |= found


@dataclass(frozen=True)
class _ProcessReading:
    created: float
    rss_mb: float
    cpu_seconds: float | None
    threads: int
    open_files: int
    sockets: int
    denied: bool
    #: CPU seconds of its children it has waited for, and its parent.
    children_seconds: float = 0.0
    ppid: int = 0


def _read_process(proc: Any, sockets: Mapping[int, int] | None) -> _ProcessReading:
    """One process's figures; a refused reading counts as zero and sets ``denied``."""
    refused: list[bool] = []
    with proc.oneshot():
        created = float(_try(proc.create_time, 0.0, refused))
        rss = _try(lambda: proc.memory_info().rss, 0, refused) / _MB
        times = _try(proc.cpu_times, None, refused)
        cpu = None if times is None else float(times.user + times.system)
        children = 0.0 if times is None else float(times.children_user + times.children_system)
        ppid = int(_try(proc.ppid, 0, refused))
        threads = int(_try(proc.num_threads, 0, refused))
        files = int(_try(lambda: _descriptors(proc), 0, refused))
        if sockets is not None:
            socks = sockets.get(proc.pid, 0)
        else:
            socks = int(_try(lambda: len(proc.net_connections(kind="inet")), 0, refused))
    return _ProcessReading(created, rss, cpu, threads, files, socks, bool(refused), children, ppid)


def _try(read: Callable[[], T], default: T | None, refused: list[bool]) -> Any:
    try:
        return read()
    except psutil.AccessDenied:
        refused.append(True)
        return default


def _descriptors(proc: psutil.Process) -> int:
    if hasattr(proc, "num_fds"):
        return int(proc.num_fds())
    return int(proc.num_handles())  # Windows


def _sockets_by_pid() -> dict[int, int] | None:
    """Inet sockets per PID from one system-wide read, or ``None`` if not permitted."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None
    counts: dict[int, int] = {}
    for conn in connections:
        if conn.pid is not None:
            counts[conn.pid] = counts.get(conn.pid, 0) + 1
    return counts


@dataclass
class _GroupState:
    series: BoundedSeries
    pids: set[int]
    denied: int = 0


class ResourceMonitor:
    """Samples ``groups`` every ``interval_s`` seconds between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        groups: Sequence[GroupSpec],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        probe: Probe | None = None,
        max_samples: int = 3600,
    ) -> None:
        if not MIN_INTERVAL_S <= interval_s < math.inf:
            # Below it (or NaN) the sampler never waits between samples: half a core of a
            # 2-core machine taken from the load generator, and a NaN in the report.
            raise ValueError(
                f"interval_s must be a number of seconds from {MIN_INTERVAL_S:g}, got "
                f"{interval_s!r}"
            )
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be unique, got {names}")
        self.groups = tuple(groups)
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._probe: Probe = probe if probe is not None else PsutilProbe()
        self._state = {
            g.name: _GroupState(BoundedSeries(capacity=max_samples), set()) for g in groups
        }
        self._t0: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._samples = 0
        self._failed = 0
        self._error: str | None = None
        self._tick: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "running" if self._task is not None and not self._task.done() else "idle"
        names = ",".join(g.name for g in self.groups)
        return (
            f"<ResourceMonitor {state} groups={names} samples={self._samples} "
            f"failed={self._failed}>"
        )

    @property
    def samples_taken(self) -> int:
        return self._samples

    @property
    def samples_failed(self) -> int:
        """Ticks whose reading the OS refused altogether (see the module notes)."""
        return self._failed

    def sample_once(self) -> None:
        """Take one sample of every group now (thread-safe, blocking); a sample the OS
        cannot give is skipped and counted in :attr:`samples_failed`."""
        with self._lock:
            now = self._clock()
            if self._t0 is None:
                self._t0 = now
            try:
                readings = self._probe.read(self.groups, now)
            except (OSError, psutil.Error) as exc:
                # E.g. "Too many open files" reading /proc at the peak of a run: skip the
                # tick rather than end the monitor (and with it the scenario's results).
                self._failed += 1
                if self._error is None:
                    self._error = f"{type(exc).__name__}: {exc}"
                return
            t = now - self._t0
            for name, state in self._state.items():
                reading = readings.get(name, Reading(0.0, 0.0, 0, 0, 0, ()))
                state.series.add(
                    ResourceSample(
                        t=t,
                        rss_mb=reading.rss_mb,
                        cpu_percent=reading.cpu_percent,
                        threads=reading.threads,
                        open_files=reading.open_files,
                        sockets=reading.sockets,
                        processes=len(reading.pids),
                    )
                )
                state.denied += reading.denied
                for pid in reading.pids:
                    if len(state.pids) >= MAX_PIDS:
                        break
                    state.pids.add(pid)
            self._samples += 1

    async def start(self) -> None:
        """Take the first sample and keep sampling in a background task."""
        if self._task is not None:
            raise MonitorError("ResourceMonitor.start() called twice; create a new monitor")
        self._tick = asyncio.Event()
        await asyncio.to_thread(self.sample_once)
        self._task = asyncio.create_task(self._run(), name="squall-monitor")

    async def _run(self) -> None:
        next_at = self._clock() + self.interval_s
        while True:
            await self._sleep(max(0.0, next_at - self._clock()))
            await asyncio.to_thread(self.sample_once)
            self._notify()
            next_at += self.interval_s
            now = self._clock()
            if next_at < now:  # fell behind (slow reads): skip, don't burst
                next_at = now + self.interval_s

    def _notify(self) -> None:
        if self._tick is not None:
            self._tick.set()
            self._tick = asyncio.Event()

    async def wait_for_samples(self, count: int) -> None:
        """Return once at least ``count`` samples have been taken (bound it with a timeout)."""
        while self._samples < count:
            if self._tick is None:
                raise MonitorError("wait_for_samples() before start(); call start() first")
            await self._tick.wait()

    async def stop(self) -> MonitorReport:
        """Stop sampling, take a final sample, and return the report."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the caller's own cancellation (a Ctrl-C): not swallowed here
            await asyncio.to_thread(self.sample_once)
        return self.report()

    def report(self) -> MonitorReport:
        """The report so far (stats are exact; series may be thinned out)."""
        with self._lock:
            groups = {
                name: GroupReport(
                    name=name,
                    stats=state.series.stats(),
                    series=tuple(state.series.kept()),
                    pids=tuple(sorted(state.pids)),
                    stride=state.series.stride,
                    denied=state.denied,
                )
                for name, state in self._state.items()
            }
            failed, error = self._failed, self._error
        return MonitorReport(
            self.interval_s,
            os.cpu_count() or 1,
            groups,
            failed_samples=failed,
            sample_error=error,
        )

    async def __aenter__(self) -> ResourceMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
