"""Runs one worker's share of a scenario on the current event loop.

The runner drives virtual users by the workload's schedule, measures its own
event-loop lag and CPU, and sends one :class:`~squall.engine.series.Snapshot`
a second. It stops by itself: new iterations stop when the schedule ends (or
:meth:`Worker.stop` is called); iterations still running get the scenario's
``graceful_stop_s`` and are then cancelled and counted as
``interrupted_iterations``; a hard deadline cancels everything. Then the connections
the users left open are closed, all at once. A stages user that stops while the run goes
on closes its own session as it leaves, so a long run whose target goes up and down keeps
only its running users' sessions and connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil  # type: ignore[import-untyped]

from squall.engine.errors import EngineError, ScenarioError, describe
from squall.engine.identity import Identity
from squall.engine.scenario import Behaviour, Scenario
from squall.engine.series import Snapshot
from squall.engine.session import Session, settle
from squall.engine.workload import ArrivalRate, Closed, Stages
from squall.metrics.histogram import LatencyHistogram, PackedHistogram
from squall.metrics.recorder import Recorder, RecorderState

#: How often the lag ticker wakes up, seconds.
LAG_INTERVAL_S = 0.05
#: How long the lag ticker may go without running before a user that ends an iteration
#: yields to the event loop: a behaviour that never awaits would otherwise run its user's
#: iterations back to back, starving the other users, the deadline and Ctrl-C.
STARVED_S = 2 * LAG_INTERVAL_S
#: How often a stages workload re-reads its target, seconds.
STAGES_TICK_S = 0.1
#: Seconds cancelled users get to finish (their ``finally`` blocks, closing sockets) before
#: they are left behind as users that ignore cancellation.
CANCEL_WAIT_S = 5.0
#: The garbage collector's youngest-generation threshold while a worker runs (CPython: 700).
GC_YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def fewer_collections(young: int) -> Iterator[None]:
    """Raise the collector's first threshold to ``young`` for the block, then restore it.

    Every request in flight holds a few young objects (its coroutines, future,
    timer handle). With thousands of users the default threshold runs a
    collection every hundred or so requests that frees nothing but promotes the
    in-flight objects, and the full collections that follow walk every user's
    state: about half of a worker's CPU at 3,000 users, and pauses that read as loop
    lag. Garbage cycles still get collected, just in larger batches.
    """
    before = gc.get_threshold()
    raised = (max(young, before[0]), *before[1:])
    gc.set_threshold(*raised)
    try:
        yield
    finally:
        if gc.get_threshold() == raised:
            gc.set_threshold(*before)


class _NoIdentity(Exception):
    """The identity factory raised for a user (recorded as ``errors.identity``)."""


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's share: ``users`` are the user (or, in the open model, VU) indexes it owns.

    ``snapshot_interval_s`` and ``lag_interval_s`` pace the worker's own periodic work (a
    snapshot to the parent, a loop-lag probe); a tool that counts the engine's work per
    request under an instruction counter stretches both so that none of it runs.
    """

    scenario: Scenario
    worker: int
    workers: int
    users: range
    deadline_s: float
    snapshot_interval_s: float = 1.0
    lag_interval_s: float = LAG_INTERVAL_S


@dataclass
class WorkerReport:
    """What a worker hands back when it is done (plain, picklable data)."""

    worker: int
    state: RecorderState
    lag: PackedHistogram
    cpu: list[float]
    interrupted_reason: str | None
    users_peak: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "state": self.state.to_dict(),
            "lag": self.lag.to_dict(),
            "cpu": list(self.cpu),
            "interrupted_reason": self.interrupted_reason,
            "users_peak": self.users_peak,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerReport:
        return cls(
            worker=int(data["worker"]),
            state=RecorderState.from_dict(data["state"]),
            lag=PackedHistogram.from_dict(data["lag"]),
            cpu=[float(c) for c in data["cpu"]],
            interrupted_reason=data["interrupted_reason"],
            users_peak=int(data["users_peak"]),
        )


class Closable(Protocol):
    """What the end of a run closes: a :class:`~squall.engine.session.Session`."""

    def aclose(self) -> Awaitable[None]: ...


async def close_all(sessions: Collection[Closable]) -> None:
    """Close every session at once; raise what is not an ``Exception`` once all are done.

    All at once: a target that never answers close frames costs one close timeout in
    all, not one per user. A close that fails with an ``Exception`` leaves the others be
    and is ignored: the run is over, its session done with either way. The first
    ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``)
    is raised once every other close is done (:func:`~squall.engine.session.settle`):
    swallowed, it would not stop what it was raised to stop.
    """
    errors = await settle(session.aclose() for session in sessions)
    if errors and not isinstance(errors[0], Exception):
        raise errors[0]


@dataclass
class _Live:
    """The worker's running users and what they hold.

    ``sessions`` are the sessions not closed yet, for the end of the run to close. A
    stages user that stops while the run goes on closes its own and takes it out, so
    the users a long run starts and stops do not pile up here. The open model's users
    stay from their first iteration to the end (between iterations they wait in
    ``_Idle.sessions``, connections open, for the next one, so theirs must stay here),
    and the closed model's start once each and keep their connections to the end of
    the run: both are at most the worker's share of users.
    """

    users: int = 0
    users_peak: int = 0
    #: The most users running at once since the last snapshot: a user that starts and
    #: stops between two snapshots still counts.
    interval_peak: int = 0
    connections: int = 0
    #: The most connections open at once since the last snapshot.
    connections_peak: int = 0
    user_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Users the end of the run left behind, counted as interrupted then: one whose
    #: cancellation lands after all is not counted again.
    left_behind: set[asyncio.Task[None]] = field(default_factory=set)
    sessions: set[Session] = field(default_factory=set)


@dataclass
class _Idle:
    """The open model's users between iterations, and an event set when one is freed."""

    sessions: list[Session] = field(default_factory=list)
    freed: asyncio.Event = field(default_factory=asyncio.Event)


class Worker:
    """Drives one worker's users on the running event loop."""

    def __init__(
        self,
        plan: WorkerPlan,
        behaviour: Behaviour,
        on_snapshot: Callable[[Snapshot], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.recorder = Recorder()
        self._behaviour = behaviour
        self._on_snapshot = on_snapshot
        self._clock = clock
        self._t0 = 0.0
        self._stopping = asyncio.Event()
        self._stop_reason: str | None = None
        self._live = _Live()
        self._lag = LatencyHistogram()
        #: When the lag ticker last ran (see :data:`STARVED_S`).
        self._ticked = self._clock()
        self._cpu: list[float] = []
        self._second = 0
        self._process = psutil.Process()

    def __repr__(self) -> str:
        return (
            f"Worker({self.plan.worker}/{self.plan.workers}, users={self._live.users}, "
            f"connections={self._live.connections}, stopping={self._stopping.is_set()})"
        )

    def stop(self, reason: str) -> None:
        """Start no new iterations; running ones get the graceful-stop period."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopping.set()

    async def run(self, t0: float) -> WorkerReport:
        """Run the plan with ``t0`` (on ``clock``) as the common start time."""
        self._t0 = t0
        self._process.cpu_percent(None)
        helpers = [
            asyncio.create_task(self._lag_ticker()),
            asyncio.create_task(self._snapshots()),
        ]
        with fewer_collections(GC_YOUNG_THRESHOLD):
            interrupted = await self._run(helpers)
        if interrupted is None and self._stop_reason not in (None, "schedule"):
            interrupted = self._stop_reason
        return WorkerReport(
            worker=self.plan.worker,
            state=self.recorder.state(),
            lag=self._lag.pack(),
            cpu=list(self._cpu),
            interrupted_reason=interrupted,
            users_peak=self._live.users_peak,
        )

    async def _run(self, helpers: list[asyncio.Task[None]]) -> str | None:
        """The schedule, the drain and the clean-up; returns "deadline" if it was hit."""
        t0 = self._t0
        interrupted: str | None = None
        try:
            await self._sleep_until(t0)
            remaining = t0 + self.plan.deadline_s - self._clock()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    await self._drive()
                    await self._drain(self.plan.scenario.graceful_stop_s)
            except TimeoutError:
                interrupted = "deadline"
        finally:
            # A closed user that swallowed its cancellation checks the reason, not the event.
            self.stop("schedule")
            await self._cancel_users()
            try:
                await close_all(self._live.sessions)
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                self._emit(final=True)
        return interrupted

    # -- schedules --

    async def _drive(self) -> None:
        workload = self.plan.scenario.workload
        if isinstance(workload, Closed):
            await self._drive_closed(workload)
        elif isinstance(workload, ArrivalRate):
            await self._drive_open(workload)
        else:
            await self._drive_stages(workload)

    async def _drive_closed(self, workload: Closed) -> None:
        for index in self.plan.users:
            self._spawn(self._closed_user(workload, index))
        end = None if workload.duration is None else self._t0 + workload.duration
        await self._wait_users(end)

    async def _closed_user(self, workload: Closed, index: int) -> None:
        await self._sleep_until(self._t0 + workload.start_offset(index))
        if self._stopping.is_set():
            return
        try:
            session = self._new_session(index)
        except _NoIdentity:
            return
        end = math.inf if workload.duration is None else self._t0 + workload.duration
        limit = math.inf if workload.iterations is None else workload.iterations
        clock = self._clock
        recorder = self.recorder
        behaviour = self._behaviour
        iterations = recorder.counter_cell("iterations")
        iteration_time = recorder.trend_buffer("iteration_time")
        self._user_started()
        try:
            n = 0
            now = clock()
            # stop() sets _stop_reason along with _stopping (the clean-up in _run that sets
            # only _stopping cancels the users next): the attribute spares a call here.
            while n < limit and now < end and self._stop_reason is None:
                # _iteration(session, n, None), inlined: a closed user runs one
                # iteration after another, and a coroutine per iteration shows.
                started = now
                # session.begin_iteration(n, None), inlined: no schedule lag here.
                session.iteration = n
                session.iterations_started = n + 1
                try:
                    await behaviour(session)
                except Exception as exc:
                    self._iteration_failed(exc)
                except BaseException as exc:
                    self._iteration_raised_base(exc)
                iterations[0] += 1
                now = clock()
                elapsed = now - started
                iteration_time.append(elapsed if elapsed > 0.0 else 0.0)
                n += 1
                if now - self._ticked > STARVED_S:
                    await asyncio.sleep(0)  # a behaviour that never awaits: see STARVED_S
        finally:
            self._user_stopped()

    async def _drive_open(self, workload: ArrivalRate) -> None:
        idle = _Idle()
        vus = iter(self.plan.users)
        end = self._t0 + workload.planned_duration
        # This worker's arrivals are every ``step``-th one, from its own index.
        step, k, planned = self.plan.workers, self.plan.worker, workload.planned_arrivals
        while k < planned:
            intended = self._t0 + workload.arrival_time(k)
            await self._sleep_until(intended)
            if self._stopping.is_set():
                break
            if idle.sessions:
                session = idle.sessions.pop()
            else:
                index = next(vus, None)
                if index is None:
                    # No user is free: wait for one (or the schedule's end) rather than
                    # wake for every arrival, then count every arrival of this worker's
                    # that came meanwhile as dropped, at once (at a huge rate, one by one
                    # would never catch up).
                    await self._wait_for_free_user(idle, end)
                    due = workload.arrivals_by(self._clock() - self._t0)
                    dropped = max(1, -((k - due) // step))
                    self.recorder.count("dropped_iterations", dropped)
                    k += dropped * step
                    continue
                try:
                    session = self._new_session(index)
                except _NoIdentity:  # recorded; this arrival cannot run
                    k += step
                    continue
            self._spawn(self._open_iteration(session, intended, idle))
            k += step
        self.stop("schedule")

    async def _wait_for_free_user(self, idle: _Idle, end: float) -> None:
        """Until a user of the open model is free again, a stop is requested, or ``end``."""
        idle.freed.clear()
        waits = [
            asyncio.ensure_future(idle.freed.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            timeout = max(0.0, end - self._clock())
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _open_iteration(self, session: Session, intended: float, idle: _Idle) -> None:
        self._user_started()
        try:
            await self._iteration(session, session.iterations_started, intended)
        finally:
            self._user_stopped()
        idle.sessions.append(session)
        idle.freed.set()

    async def _drive_stages(self, workload: Stages) -> None:
        users = self.plan.users
        retired: dict[int, bool] = {}
        running: dict[int, asyncio.Task[None]] = {}
        end = self._t0 + workload.planned_duration
        while not self._stopping.is_set() and self._clock() < end:
            total = workload.target_users(self._clock() - self._t0)
            mine = max(0, min(len(users), total - users.start))
            for offset, index in enumerate(users):
                wanted = offset < mine
                retired[index] = not wanted
                task = running.get(index)
                if wanted and (task is None or task.done()):
                    running[index] = self._spawn(self._stages_user(index, retired))
            await self._sleep_until(min(end, self._clock() + STAGES_TICK_S))
        self.stop("schedule")

    async def _stages_user(self, index: int, retired: dict[int, bool]) -> None:
        try:
            session = self._new_session(index)
        except _NoIdentity:
            return
        self._user_started()
        try:
            n = 0
            while not self._stopping.is_set() and not retired.get(index, False):
                await self._iteration(session, n, None)
                n += 1
        finally:
            self._user_stopped()
        await self._retire(session)

    async def _retire(self, session: Session) -> None:
        """Close the session of a user that stopped while the run goes on, and forget it.

        Kept to the end of the run, the session of every user a stages run ever stopped
        would stay in memory, its connections open. Once the run is stopping, the session
        is left to the end of the run, which closes all of them at once (one close timeout
        in all against a target that never answers close frames); so is one whose close
        was cancelled halfway.
        """
        if self._stopping.is_set():
            return
        # As at the end of the run: a close that failed leaves the session done with all
        # the same (a KeyboardInterrupt or SystemExit leaves the event loop, as from any task).
        with contextlib.suppress(Exception):
            await session.aclose()
        self._live.sessions.discard(session)

    # -- iterations --

    async def _iteration(self, session: Session, n: int, intended: float | None) -> None:
        clock = self._clock
        recorder = self.recorder
        started = clock()
        lag = None
        if intended is not None:
            lag = max(0.0, started - intended)
            recorder.trend("schedule_lag", lag)
        session.begin_iteration(n, lag)
        try:
            await self._behaviour(session)
        except Exception as exc:
            self._iteration_failed(exc)
        except BaseException as exc:
            self._iteration_raised_base(exc)
        recorder.count("iterations")
        now = clock()
        elapsed = now - (started if intended is None else intended)
        recorder.trend("iteration_time", elapsed if elapsed > 0.0 else 0.0)
        if now - self._ticked > STARVED_S:
            await asyncio.sleep(0)  # a behaviour that never awaits: see STARVED_S

    def _iteration_raised_base(self, exc: BaseException) -> None:
        """An iteration ended by a ``BaseException`` that is not an ``Exception``.

        The runner cancelling the user (the deadline, the end of the graceful stop) is
        re-raised and counted as an interrupted iteration. Anything else came from the
        behaviour itself: a ``KeyboardInterrupt`` or ``SystemExit`` it raised, a
        ``CancelledError`` of a task it awaited, a ``BaseException`` subclass of its own.
        Left to propagate, those would end the user's task (and a ``KeyboardInterrupt``
        or ``SystemExit`` the event loop with it, taking everything measured along); they
        are counted like any other error, with the fix.
        """
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop: the coroutine is being closed (GeneratorExit)
            task = None
        if task is None:
            raise exc
        if isinstance(exc, asyncio.CancelledError) and task.cancelling():
            if task not in self._live.left_behind:
                self.recorder.count("interrupted_iterations")
            raise exc
        kind = type(exc).__name__
        if isinstance(exc, asyncio.CancelledError):
            fix = (
                "the behaviour was not cancelled: a task or future it awaited was; catch "
                "asyncio.CancelledError around that await if the cancellation is expected"
            )
        else:
            fix = (
                f"a behaviour raises Exception subclasses: {kind} is a BaseException, which "
                "would stop the whole run, not one iteration"
            )
        self.recorder.error(kind, f"{describe(exc)}; {fix}")

    def _iteration_failed(self, exc: Exception) -> None:
        """Count an exception that ended an iteration (wire errors were counted already)."""
        if isinstance(exc, EngineError):
            if not exc.recorded:
                self.recorder.error(exc.kind, str(exc))
        elif isinstance(exc, TypeError) and exc.__traceback__ and exc.__traceback__.tb_next is None:
            # Raised by the runner's own ``await behaviour(session)``, not inside the
            # behaviour: what it returned cannot be awaited (a plain ``def``, say).
            behaviour = self.plan.scenario.behaviour
            name = (
                behaviour if isinstance(behaviour, str) else getattr(behaviour, "__qualname__", "")
            )
            self.recorder.error(
                "TypeError",
                f"behaviour {name!r} returned what cannot be awaited ({exc}); "
                "define it with 'async def'",
            )
        else:
            self.recorder.error(type(exc).__name__, describe(exc))

    def _new_session(self, index: int) -> Session:
        """User ``index``'s session; :class:`_NoIdentity`, the error recorded, when the
        scenario's identity factory raises for it (the user then does not run)."""
        try:
            identity = self.plan.scenario.identities(index)
        except Exception as exc:
            self.recorder.error(
                "identity",
                f"the identity factory raised for user {index}: "
                f"{type(exc).__name__}: {describe(exc)}",
            )
            raise _NoIdentity from exc
        if not isinstance(identity, Identity):
            # Each iteration then failed on it at the behaviour's first use of the socket,
            # blaming the behaviour's line.
            self.recorder.error(
                "identity",
                f"the identity factory returned {type(identity).__name__} {identity!r:.80} for "
                f"user {index}, not an Identity(user_id, token, index)",
            )
            raise _NoIdentity
        session = Session(
            identity, self.recorder, self._clock, self.plan.scenario.params, self._connection
        )
        self._live.sessions.add(session)
        return session

    def _connection(self, delta: int) -> None:
        live = self._live
        live.connections += delta
        if live.connections > live.connections_peak:
            live.connections_peak = live.connections

    def _user_started(self) -> None:
        live = self._live
        live.users += 1
        if live.users > live.interval_peak:
            live.interval_peak = live.users
            live.users_peak = max(live.users_peak, live.users)

    def _user_stopped(self) -> None:
        self._live.users -= 1

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._live.user_tasks.add(task)
        task.add_done_callback(self._live.user_tasks.discard)
        return task

    async def _wait_users(self, end: float | None) -> None:
        """Until every user task is done, a stop is requested, or ``end``."""
        stop = asyncio.create_task(self._stopping.wait())
        try:
            while self._live.user_tasks and not self._stopping.is_set():
                timeout = None if end is None else max(0.0, end - self._clock())
                if timeout == 0.0:
                    break
                await asyncio.wait(
                    [*self._live.user_tasks, stop],
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            stop.cancel()
        self.stop("schedule")

    async def _drain(self, grace: float) -> None:
        """Give running iterations ``grace`` seconds to finish."""
        if self._live.user_tasks:
            await asyncio.wait(list(self._live.user_tasks), timeout=grace)

    async def _cancel_users(self) -> None:
        """Cancel the users still running; give them :data:`CANCEL_WAIT_S` to finish.

        A behaviour that catches ``CancelledError`` and carries on (a bare ``except:``
        or ``except BaseException:`` in a loop) would otherwise hold the run open for
        ever: such users are left behind, counted as interrupted, and named in a
        ``errors.scenario`` sample, so the run ends and reports what it measured.
        """
        tasks = list(self._live.user_tasks)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        if not pending:
            return
        self.recorder.count("interrupted_iterations", len(pending))
        self._live.left_behind.update(pending)
        for task in pending:
            # Named below; without this each also printed "Task was destroyed but it is
            # pending!" once its loop closed (the flag asyncio clears for tasks it abandons).
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        behaviour = self.plan.scenario.behaviour
        name = behaviour if isinstance(behaviour, str) else getattr(behaviour, "__qualname__", "")
        self.recorder.error(
            ScenarioError.kind,
            f"{len(pending)} virtual user(s) still ran {CANCEL_WAIT_S:g} s after the end of the "
            f"run cancelled them and were left behind: behaviour {name!r} catches "
            "asyncio.CancelledError (an 'except BaseException:' or a bare 'except:') and "
            "carries on, or takes that long to stop (awaiting in its cleanup, or work that "
            "holds the event loop: the generator's loop lag says); re-raise it, or stop sooner",
        )

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when`` on the clock, or until a stop is requested. Never less: the
        event loop runs a timer up to its clock resolution early, and an iteration begun
        before its intended start ran ahead of its schedule."""
        while (delay := when - self._clock()) > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    # -- self-measurement --

    async def _lag_ticker(self) -> None:
        interval = self.plan.lag_interval_s
        expected = self._clock() + interval
        while True:
            await asyncio.sleep(interval)
            now = self._ticked = self._clock()
            self._lag.record(max(0.0, now - expected))
            expected = now + interval

    async def _snapshots(self) -> None:
        interval = self.plan.snapshot_interval_s
        while True:
            target = self._t0 + (self._second + 1) * interval
            delay = target - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._emit(final=False)

    def _emit(self, *, final: bool) -> None:
        interval = self.plan.snapshot_interval_s
        elapsed = self._clock() - self._t0 - self._second * interval
        span = min(interval, max(0.0, elapsed)) if final else interval
        cpu = float(self._process.cpu_percent(None))
        if not final:
            self._cpu.append(cpu)
        stats = self.recorder.take_interval()
        self.recorder.gauge("users", self._live.users_peak)
        self._on_snapshot(
            Snapshot(
                worker=self.plan.worker,
                t=self._second,
                span=span,
                users=self._live.interval_peak,
                connections=self._live.connections,
                connections_peak=self._live.connections_peak,
                sent=stats.sent,
                received=stats.received,
                errors=stats.errors,
                latency=stats.latency,
                cpu=None if final else cpu,
                lag=self._lag.pack(),
                final=final,
            )
        )
        self._second += 1
        self._live.interval_peak = self._live.users
        self._live.connections_peak = self._live.connections
