"""The worker process: its own uvloop event loop, talking to the parent over a pipe.

Protocol on the duplex pipe (picklable tuples):

* worker → parent: ``("ready", None)``, then ``("snapshot", dict)`` each second,
  then ``("final", dict)`` or ``("failed", traceback text)``.
* parent → worker: ``("start", t0)`` with the common start on the monotonic
  clock (shared by every process on the machine), and ``("stop", reason)``.

The worker ignores SIGINT and SIGTERM: Ctrl-C (or a CI job's cancellation) reaches the
whole process group, and the parent decides how to stop (it sends ``("stop", "sigint")``);
a worker whose parent is gone stops by itself when the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import traceback
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from squall.engine.runner import CANCEL_WAIT_S, Worker, WorkerPlan
from squall.engine.series import Snapshot

T = TypeVar("T")


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """``uvloop.run(main)``, except that closing the loop gives the tasks still running a
    bounded time (:data:`~squall.engine.runner.CANCEL_WAIT_S`) once cancelled.

    ``asyncio.run`` waits for every one of them: a virtual user whose behaviour ignores
    cancellation, which the worker already left behind and counted, would keep the
    process from ever returning (and from exiting on SIGTERM).
    """
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            # Those cancelled already (users left behind) had their time to finish.
            fresh = {task for task in left if not task.cancelling()}
            for task in left:
                task.cancel()
            if fresh:
                loop.run_until_complete(asyncio.wait(fresh, timeout=CANCEL_WAIT_S))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def worker_main(plan: WorkerPlan, conn: Connection) -> None:
    """Entry point of a spawned worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        run_on_uvloop(_serve(plan, conn))
    except BaseException:
        # With the parent gone (its pipe closed) the failure has no reader: the worker ends
        # without a traceback on the terminal the parent left.
        with contextlib.suppress(OSError):
            conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


async def _serve(plan: WorkerPlan, conn: Connection) -> None:
    behaviour = plan.scenario.resolve_behaviour()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[float] = loop.create_future()

    def send_snapshot(snapshot: Snapshot) -> None:
        try:
            conn.send(("snapshot", snapshot.to_dict()))
        except OSError:  # the parent is gone (killed, say): nobody reads the run any more
            parent_gone()

    worker = Worker(plan, behaviour, send_snapshot)

    def parent_gone() -> None:
        loop.remove_reader(conn.fileno())
        worker.stop("parent-gone")
        if not started.done():
            started.cancel()

    def on_control() -> None:
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            parent_gone()
            return
        if kind == "start" and not started.done():
            started.set_result(float(value))
        elif kind == "stop":
            worker.stop(str(value))

    loop.add_reader(conn.fileno(), on_control)
    try:
        conn.send(("ready", None))
        t0 = await started
        report = await worker.run(t0)
    finally:
        loop.remove_reader(conn.fileno())
    with contextlib.suppress(OSError):  # the parent gone, the report has no reader
        conn.send(("final", report.to_dict()))
