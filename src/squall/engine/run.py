"""Run a scenario: split users over worker processes, collect, merge, return a RunResult.

With one process the worker runs on the caller's event loop; with more, each
worker is a spawned process with its own uvloop loop. Workers stream one
snapshot a second (live progress, time series) and a final report whose
histograms and counters are merged exactly. Ctrl-C asks every worker to stop;
what was measured up to then is kept and the result is marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from squall.engine.errors import ScenarioError, WorkerFailed
from squall.engine.process import run_on_uvloop, worker_main
from squall.engine.progress import ProgressSink, progress_sink
from squall.engine.runner import Worker, WorkerPlan, WorkerReport
from squall.engine.saturation import merge_health
from squall.engine.scenario import Scenario
from squall.engine.series import ProgressView, SeriesAggregator, Snapshot
from squall.engine.workload import ArrivalRate, Closed, partition
from squall.fdlimit import raise_open_files
from squall.interrupt import STOP_SIGNALS
from squall.metrics.recorder import Recorder, error_summaries, merge_states, to_metrics
from squall.metrics.result import Counter, Gauge, RunResult

#: Hard cap for runs bounded only by iteration counts, seconds.
ITERATION_RUN_CAP_S = 600.0
#: Seconds the parent waits for spawned workers to import and report ready.
WORKER_START_TIMEOUT_S = 60.0
#: Delay between "all workers ready" and the common start, seconds.
START_DELAY_S = 0.05
#: Seconds past the deadline the parent waits for the workers' reports before it asks them
#: to stop, and then again before it gives up on a worker that does not answer.
REPORT_SLACK_S = 15.0
STOP_WAIT_S = 10.0

Progress = bool | Callable[[ProgressView], None]


def default_deadline(scenario: Scenario) -> float:
    """The planned duration plus grace and slack; a fixed cap for iteration-bound runs."""
    workload = scenario.workload
    planned = workload.planned_duration
    if planned is None:
        return ITERATION_RUN_CAP_S
    ramp = 0.0
    if isinstance(workload, Closed):
        ramp = workload.start_offset(workload.users - 1)
    return planned + ramp + scenario.graceful_stop_s + 10.0


def _process_count(scenario: Scenario, processes: int | None) -> int:
    if processes is not None and (
        isinstance(processes, bool) or not isinstance(processes, int) or processes < 1
    ):
        raise ScenarioError(
            f"processes={processes!r} must be a whole number >= 1 (or None for one per core)"
        )
    wanted = processes or os.cpu_count() or 1
    count = max(1, min(wanted, scenario.workload.max_users))
    unpicklable = scenario.unpicklable() if count > 1 else []
    if unpicklable:
        if processes is not None:
            fix = {
                "behaviour": "give the behaviour as 'package.module:function'",
                "identities": "make the identity factory a module-level class or function",
                "params": "keep params to plain values (numbers, text, lists, dicts)",
                "scenario": "keep its parts to what pickle can send",
            }
            raise ScenarioError(
                f"scenario {scenario.name!r} cannot be sent to {count} worker processes: its "
                f"{' and '.join(unpicklable)} cannot be pickled; "
                f"{'; '.join(fix[part] for part in unpicklable)}, or run with processes=1"
            )
        count = 1
    return count


def _plans(scenario: Scenario, count: int, deadline_s: float) -> list[WorkerPlan]:
    ranges = partition(scenario.workload.max_users, count)
    return [WorkerPlan(scenario, w, count, ranges[w], deadline_s) for w in range(count)]


@dataclass
class _Collector:
    aggregator: SeriesAggregator
    sink: ProgressSink
    reports: dict[int, WorkerReport] = field(default_factory=dict)
    #: Why a worker's measurements are missing, one line per worker that sent no report.
    missing: list[str] = field(default_factory=list)

    def snapshot(self, snapshot: Snapshot) -> None:
        for view in self.aggregator.add(snapshot):
            self.sink.update(view)


async def run_scenario(
    scenario: Scenario,
    *,
    processes: int | None = None,
    progress: Progress = True,
    deadline_s: float | None = None,
    stopped_after_load: list[str] | None = None,
) -> RunResult:
    """Run ``scenario`` to completion (or deadline / Ctrl-C) and return what it measured.

    ``processes``: worker processes (default one per core, at most one per user;
    1 runs on the current event loop). ``progress``: True for live progress,
    False for none, or a callable receiving each second's ProgressView.
    ``deadline_s``: hard cap after the start; remaining users are cancelled.

    A Ctrl-C or SIGTERM during the load cuts it short (``interrupted_reason``). One that
    comes once the load has ended, while the workers exit and the result is built, cannot
    make it partial: it is appended to ``stopped_after_load`` (its reason) and the whole
    result returned; without that list, KeyboardInterrupt is raised once the run is done.
    """
    if deadline_s is not None and (
        isinstance(deadline_s, bool)
        or not isinstance(deadline_s, int | float)
        or not 0 < deadline_s < math.inf
    ):
        raise ScenarioError(
            f"deadline_s={deadline_s!r} must be a finite number of seconds > 0 (or None for "
            "the planned duration and some margin): every run ends by a hard deadline"
        )
    count = _process_count(scenario, processes)
    if count > 1:
        # Here, before any worker starts: a behaviour that cannot be found is one
        # ScenarioError, not a WorkerFailed holding every worker's traceback of it.
        scenario.resolve_behaviour()
    raise_open_files()  # before the sockets; worker processes inherit it
    deadline = deadline_s if deadline_s is not None else default_deadline(scenario)
    plans = _plans(scenario, count, deadline)
    collector = _Collector(
        SeriesAggregator(count, scenario.workload.planned_duration), progress_sink(progress)
    )
    stop_reason: list[str] = []
    late = stopped_after_load if stopped_after_load is not None else []
    try:
        if count == 1:
            t0, ended = await _run_inline(plans[0], collector, stop_reason, late)
        else:
            t0, ended = await _run_processes(plans, collector, stop_reason, late)
    except BaseException:
        collector.sink.close(None)
        raise
    with _on_stop_signal(late.append):  # the load is over: see above
        result: RunResult | None = None
        try:
            result = _result(scenario, count, collector, t0, ended, stop_reason)
        finally:
            collector.sink.close(result)
    if late and stopped_after_load is None:
        raise KeyboardInterrupt(late[0])
    return result


def run(
    scenario: Scenario,
    *,
    processes: int | None = None,
    progress: Progress = True,
    deadline_s: float | None = None,
) -> RunResult:
    """Synchronous :func:`run_scenario` on a fresh uvloop event loop.

    Raises RuntimeError when called with an event loop already running in this thread
    (from async code, or a notebook): ``await run_scenario(...)`` there instead. Called
    while a spawned worker imports the main module (a script without a main guard), it
    ends that worker with a one-line reason (``SystemExit``).
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A spawned worker re-imports the main module; a script without a main guard
        # would call run() again there and spawn workers of its own. The worker ends with
        # the reason alone: a traceback per worker through multiprocessing would bury it.
        raise SystemExit(
            f"squall: run({scenario.name!r}) was called while a worker process imported the "
            "main module; guard the script's entry point with 'if __name__ == \"__main__\":'"
        )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"run({scenario.name!r}) was called with an event loop already running in this "
            "thread; use 'await run_scenario(scenario, ...)' from async code"
        )
    result: RunResult = run_on_uvloop(
        run_scenario(scenario, processes=processes, progress=progress, deadline_s=deadline_s)
    )
    return result


@contextlib.contextmanager
def _on_stop_signal(callback: Callable[[str], None]) -> Any:
    """Route the :data:`STOP_SIGNALS` to ``callback(reason)`` while running, when this is
    the main thread; their previous handlers are back afterwards."""
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig, reason in STOP_SIGNALS.items():
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, callback, reason)
            except (NotImplementedError, RuntimeError):
                continue
            installed[sig] = previous
    try:
        yield
    finally:
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)


async def _run_inline(
    plan: WorkerPlan, collector: _Collector, stop_reason: list[str], late: list[str]
) -> tuple[float, float]:
    behaviour = plan.scenario.resolve_behaviour()
    worker = Worker(plan, behaviour, collector.snapshot)

    def interrupt(reason: str) -> None:
        stop_reason.append(reason)
        worker.stop(reason)

    t0 = time.monotonic()
    with _on_stop_signal(interrupt):
        report = await worker.run(t0)
    with _on_stop_signal(late.append):  # the load is over: see run_scenario
        collector.reports[plan.worker] = report
        return t0, time.monotonic()


#: Why a worker dies before it is ready, most often: spawned, it re-imports the main module.
_BOOTSTRAP_HINT = (
    ": it failed while starting, most likely importing the main module or finding in it a "
    "behaviour or identity factory given as an object (its error is above); a script that "
    "calls run() must guard its entry point with 'if __name__ == \"__main__\":', and define "
    "what it passes at the top level, outside that guard (or give the behaviour as "
    "'module:function')"
)


@dataclass
class _Child:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    done: bool = False
    failure: str | None = None
    #: Whether it died once started (killed, say): its measurements are missing.
    died: bool = False


async def _run_processes(
    plans: list[WorkerPlan], collector: _Collector, stop_reason: list[str], late: list[str]
) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    children: list[_Child] = []
    changed = asyncio.Event()

    def on_message(index: int) -> None:
        child = children[index]
        try:
            kind, value = child.conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(child.conn.fileno())
            if not child.done:
                child.done = True
                if child.ready and child.failure is None:
                    # Killed mid-run (the OOM killer, say): the others' measurements stand.
                    child.died = True
                else:
                    code = child.process.exitcode
                    child.failure = child.failure or (
                        f"exited{'' if code is None else f' (code {code})'} "
                        "without a report" + (_BOOTSTRAP_HINT if not child.ready else "")
                    )
            changed.set()
            return
        if kind == "ready":
            child.ready = True
        elif kind == "snapshot":
            collector.snapshot(Snapshot.from_dict(value))
        elif kind == "final":
            collector.reports[index] = WorkerReport.from_dict(value)
            child.done = True
        elif kind == "failed":
            child.failure = str(value)
            child.done = True
        changed.set()

    def broadcast(message: tuple[str, Any]) -> None:
        for child in children:
            if not child.done:
                with contextlib.suppress(OSError):
                    child.conn.send(message)

    def interrupt(reason: str) -> None:
        stop_reason.append(reason)
        broadcast(("stop", reason))

    async def wait_for(condition: Callable[[], bool], within: float) -> bool:
        end = loop.time() + within
        while not condition():
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
        return True

    try:
        for index, plan in enumerate(plans):
            parent_end, child_end = context.Pipe(duplex=True)
            process = context.Process(
                target=worker_main, args=(plan, child_end), name=f"squall-worker-{index}"
            )
            process.daemon = True
            process.start()
            child_end.close()
            children.append(_Child(process, parent_end))
            loop.add_reader(parent_end.fileno(), on_message, index)
        with _on_stop_signal(interrupt):
            ready = await wait_for(
                lambda: all(c.ready or c.done for c in children), WORKER_START_TIMEOUT_S
            )
            _raise_failures(children, ready, "start")
            t0 = time.monotonic() + START_DELAY_S
            broadcast(("start", t0))
            deadline = plans[0].deadline_s + START_DELAY_S + REPORT_SLACK_S
            finished = await wait_for(lambda: all(c.done for c in children), deadline)
            if not finished:
                broadcast(("stop", "deadline"))
                stop_reason.append("deadline")
                await wait_for(lambda: all(c.done for c in children), STOP_WAIT_S)
            ended = time.monotonic()
            collector.missing.extend(
                _silent_worker(index, plans[index])
                for index, child in enumerate(children)
                if not child.done
            )
            for index, child in enumerate(children):
                if child.died:  # its pipe closed as it died: the exit code follows at once
                    await asyncio.to_thread(child.process.join, 1.0)
                    collector.missing.append(
                        _died_worker(index, plans[index], child.process.exitcode)
                    )
        _raise_failures(children, True, "run")
        return t0, ended
    finally:
        for child in children:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(child.conn.fileno())
            # A worker still waiting for its start (another failed to start) ends at EOF.
            child.conn.close()
        # The load is over (or never began): a stop now waits for the workers' exit, which
        # takes up to seconds, instead of losing what they reported (see run_scenario).
        with _on_stop_signal(late.append):
            for child in children:
                # One that reported exits at once; one that did not is not coming back (its
                # loop is blocked, or it waited for a start): workers ignore SIGTERM (the
                # parent stops them through the pipe), so it is killed.
                await asyncio.to_thread(child.process.join, 5.0 if child.done else 1.0)
                if child.process.is_alive():
                    child.process.kill()
                    await asyncio.to_thread(child.process.join, 5.0)


def _died_worker(index: int, plan: WorkerPlan, code: int | None) -> str:
    """Why worker ``index`` sent no report although it started: it died (``code``: its
    exit code)."""
    if code is not None and code < 0 and -code in signal.valid_signals():
        how = (
            f"was killed by {signal.Signals(-code).name} during the run, without a report "
            "(the kernel's out-of-memory killer, or a signal sent to it)"
        )
    else:
        # Exited by itself: os._exit or sys.exit in a thread, or C code, in the behaviour.
        how = (
            f"exited{'' if code is None else f' with code {code}'} during the run, without a "
            "report: it ended by itself (os._exit, or sys.exit in a thread, in the behaviour "
            "or a library it calls)"
        )
    return f"worker {index} {how}; {_missing(plan)}"


def _silent_worker(index: int, plan: WorkerPlan) -> str:
    """Why worker ``index`` sent no report although it started: its loop did not answer."""
    return (
        f"worker {index} sent no report {REPORT_SLACK_S + STOP_WAIT_S:g} s past the run's "
        "deadline and was stopped: its event loop was blocked, most likely by a behaviour "
        "calling a blocking function (time.sleep, a synchronous client) instead of awaiting "
        f"one; {_missing(plan)}"
    )


def _missing(plan: WorkerPlan) -> str:
    return f"the measurements of its users {plan.users.start}..{plan.users.stop - 1} are missing"


def _raise_failures(children: list[_Child], ready: bool, phase: str) -> None:
    failures = [f"worker {i}: {c.failure}" for i, c in enumerate(children) if c.failure is not None]
    if not ready:
        failures.append(f"workers did not report ready within {WORKER_START_TIMEOUT_S:g} s")
    if failures:
        raise WorkerFailed(f"worker processes failed during {phase}:\n" + "\n".join(failures))


#: Counters the engine counts only when something happens, in every result all the same
#: (at 0): a threshold on them (``errors: count == 0``) judges a run that had none, instead
#: of reading "not recorded" (``dropped_iterations`` too, in the open model).
ZERO_COUNTERS = ("iterations", "errors", "timeouts", "interrupted_iterations")


def _result(
    scenario: Scenario,
    count: int,
    collector: _Collector,
    t0: float,
    ended: float,
    stop_reason: list[str],
) -> RunResult:
    reports = [collector.reports[w] for w in sorted(collector.reports)]
    duration = max(0.0, ended - t0)
    started_wall = time.time() - (time.monotonic() - t0)
    silent = Recorder()
    for line in collector.missing:
        silent.error(WorkerFailed.kind, line)
    merged = merge_states([*(report.state for report in reports), silent.state()])
    metrics = to_metrics(merged, duration)
    workload = scenario.workload
    for name in ZERO_COUNTERS + (
        ("dropped_iterations",) if isinstance(workload, ArrivalRate) else ()
    ):
        metrics.setdefault(name, Counter(name, 0, 0.0))
    series = collector.aggregator.points()
    peak = max([0, *(p.users for p in series), *(r.users_peak for r in reports)])
    metrics["users"] = Gauge("users", float(peak), 0.0, float(peak))
    reasons = [r.interrupted_reason for r in reports if r.interrupted_reason]
    reason = stop_reason[0] if stop_reason else (reasons[0] if reasons else None)
    description = workload.describe()
    if isinstance(workload, ArrivalRate):
        description["planned_iterations"] = workload.planned_arrivals
    return RunResult(
        scenario=scenario.name,
        params=dict(scenario.params),
        workload=description,
        started_at=started_wall,
        ended_at=started_wall + duration,
        duration_s=duration,
        processes=count,
        metrics=metrics,
        series=series,
        errors=error_summaries(merged),
        generator=merge_health([(r.lag, r.cpu) for r in reports]),
        interrupted=reason is not None,
        interrupted_reason=reason,
    )
