"""The client loops the engine benchmark compares, each run as its own pinned process.

``python -m bench.clients KIND --url URL --sockets N --duration S [--cpu C]``
opens N sockets to the echo server and keeps one 64-byte message in flight on
each for S seconds, then prints one JSON object on stdout: cumulative samples
``[seconds, round trips, CPU seconds, user CPU seconds]`` that
:func:`bench.table.window` turns into a steady-state rate and its CPU split.

- ``bare``: picows callbacks only; each reply is sent back from the frame
  callback. No tasks, no timing, no JSON: the ceiling for Python on picows.
- ``bare-tasks``: the smallest asyncio client loop, one task per socket that
  sends and awaits a future the frame callback resolves. No timing, no JSON:
  the reference of the engine goal.
- ``squall``: the squall engine as a user runs it: a closed workload of N users,
  each iteration one ``ws.request_text`` of the same 64 bytes (send, wait, record
  the round trip in an HdrHistogram, count it), on one process (``processes=1``).
- ``squall-json``: the same with ``ws.request``, which also encodes the message
  from a dict and parses the reply into one (orjson).
- ``squall-loop``: ``squall`` with 100 ``ws.request_text`` calls per iteration.
- Locust runs through :mod:`bench.locust_run` with :mod:`bench.locustfile`.

The bare loops run with the garbage collector's youngest-generation threshold the
engine sets while it runs (``squall.engine.runner.GC_YOUNG_THRESHOLD``), so the
reference does not pay collections the engine is spared: at 1,000 sockets the
default threshold costs the bare loop about 5 % of its rate.

``--round-trips K`` instead of ``--duration`` (``bare-tasks`` and ``squall`` only)
runs a fixed count: each socket does K round trips once every socket is open, then
the client prints ``{"round_trips": …}``. That is the mode an instruction
counter runs (:mod:`bench.instructions`): the same work whatever the speed, and
squall's once-a-second work (snapshot, loop-lag probe) paced out of the run.

Every loop is bounded by ``--duration`` or ``--round-trips``, and connecting by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from typing import Any

from bench.record import cpu_seconds, pin, user_cpu_seconds

#: 64 bytes of JSON text: {"type":"echo","pad":"xxx…"}.
PAYLOAD_OBJECT = {"type": "echo", "pad": "x" * 40}
PAYLOAD = json.dumps(PAYLOAD_OBJECT, separators=(",", ":")).encode()
assert len(PAYLOAD) == 64, len(PAYLOAD)
CONNECT_BATCH = 100
CONNECT_TIMEOUT_S = 30.0
SAMPLE_EVERY_S = 0.5
#: Requests per iteration for ``squall-loop``.
LOOP_PER_ITERATION = 100
#: The hard deadline of a counted run (``--round-trips``), which may run under valgrind.
COUNTED_DEADLINE_S = 1800.0
#: squall's snapshot and loop-lag intervals in a counted run: longer than any such run.
QUIET_INTERVAL_S = 1e6


async def _open(url: str, listeners: list[Any]) -> tuple[list[Any], float]:
    """Connect one socket per listener, in batches; return the transports and the time taken."""
    import picows

    began = time.monotonic()
    transports: list[Any] = []
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        for first in range(0, len(listeners), CONNECT_BATCH):
            batch = listeners[first : first + CONNECT_BATCH]
            opened = await asyncio.gather(
                *(picows.ws_connect(lambda listener=listener: listener, url) for listener in batch)
            )
            transports.extend(transport for transport, _ in opened)
    return transports, time.monotonic() - began


async def _sample(done: list[int], duration: float) -> list[tuple[float, ...]]:
    """``[seconds, round trips, CPU seconds, user CPU seconds]`` every half second for
    ``duration`` seconds."""
    t0, cpu0, user0 = time.monotonic(), cpu_seconds(), user_cpu_seconds()
    samples: list[tuple[float, ...]] = [(0.0, 0.0, 0.0, 0.0)]
    while (elapsed := time.monotonic() - t0) < duration:
        await asyncio.sleep(min(SAMPLE_EVERY_S, max(0.0, duration - elapsed)))
        samples.append(
            (
                time.monotonic() - t0,
                float(done[0]),
                cpu_seconds() - cpu0,
                user_cpu_seconds() - user0,
            )
        )
    return samples


async def _bare(url: str, sockets: int, duration: float) -> dict[str, Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    done = [0]

    class Loop(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                done[0] += 1
                transport.send(WSMsgType.TEXT, PAYLOAD)

    transports, connect_s = await _open(url, [Loop() for _ in range(sockets)])
    sampling = asyncio.create_task(_sample(done, duration))
    for transport in transports:
        transport.send(WSMsgType.TEXT, PAYLOAD)
    samples = await sampling
    for transport in transports:
        transport.disconnect()
    return {"samples": samples, "connect_s": connect_s, "errors": 0}


async def _open_waiters(url: str, sockets: int) -> tuple[list[Any], list[Any], float]:
    """The bare loop's sockets: for each, a listener whose ``reply`` future the next text
    frame resolves; returns the listeners, their transports and the time connecting took."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    class Waiter(WSListener):
        __slots__ = ("reply",)

        def __init__(self) -> None:
            self.reply: asyncio.Future[None] | None = None

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            reply = self.reply
            if frame.msg_type is WSMsgType.TEXT and reply is not None and not reply.done():
                reply.set_result(None)

    waiters = [Waiter() for _ in range(sockets)]
    transports, connect_s = await _open(url, waiters)
    return waiters, transports, connect_s


async def _bare_tasks(url: str, sockets: int, duration: float) -> dict[str, Any]:
    from picows import WSMsgType, WSTransport

    loop = asyncio.get_running_loop()
    done = [0]
    waiters, transports, connect_s = await _open_waiters(url, sockets)
    stop_at = time.monotonic() + duration

    async def user(transport: WSTransport, waiter: Any) -> None:
        monotonic = time.monotonic
        while monotonic() < stop_at:
            waiter.reply = reply = loop.create_future()
            transport.send(WSMsgType.TEXT, PAYLOAD)
            await reply
            done[0] += 1

    sampling = asyncio.create_task(_sample(done, duration))
    users = [asyncio.create_task(user(t, w)) for t, w in zip(transports, waiters, strict=True)]
    samples = await sampling
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await asyncio.gather(*users)
    for transport in transports:
        transport.disconnect()
    return {"samples": samples, "connect_s": connect_s, "errors": 0}


async def _bare_tasks_counted(url: str, sockets: int, per_socket: int) -> dict[str, Any]:
    """``bare-tasks`` for ``per_socket`` round trips on each socket instead of a duration."""
    from picows import WSMsgType, WSTransport

    loop = asyncio.get_running_loop()
    done = [0]
    waiters, transports, connect_s = await _open_waiters(url, sockets)

    async def user(transport: WSTransport, waiter: Any) -> None:
        for _ in range(per_socket):
            waiter.reply = reply = loop.create_future()
            transport.send(WSMsgType.TEXT, PAYLOAD)
            await reply
            done[0] += 1

    async with asyncio.timeout(COUNTED_DEADLINE_S):
        await asyncio.gather(*(user(t, w) for t, w in zip(transports, waiters, strict=True)))
    for transport in transports:
        transport.disconnect()
    return {"round_trips": done[0], "connect_s": connect_s, "errors": 0}


async def echo_behaviour(session: Any) -> None:
    """One iteration of a squall virtual user: the 64-byte message, its reply, timed."""
    ws = await session.connection(session.params["url"], auth=False)
    await ws.request_text(PAYLOAD, metric="round_trip", timeout=10.0)


async def echo_json_behaviour(session: Any) -> None:
    """The same exchange as JSON: the dict encoded, the reply parsed into a dict."""
    ws = await session.connection(session.params["url"], auth=False)
    await ws.request(PAYLOAD_OBJECT, metric="round_trip", timeout=10.0)


async def echo_loop_behaviour(session: Any) -> None:
    """One iteration of ``per_iteration`` requests: the engine's per-iteration cost amortised."""
    ws = await session.connection(session.params["url"], auth=False)
    for _ in range(int(session.params["per_iteration"])):
        await ws.request_text(PAYLOAD, metric="round_trip", timeout=10.0)


#: The behaviour each squall client kind runs.
BEHAVIOURS = {
    "squall": "bench.clients:echo_behaviour",
    "squall-json": "bench.clients:echo_json_behaviour",
    "squall-loop": "bench.clients:echo_loop_behaviour",
}


async def _squall(url: str, sockets: int, duration: float, kind: str) -> dict[str, Any]:
    from squall.engine import Scenario, closed, run_scenario
    from squall.engine.series import ProgressView

    per_second: list[tuple[float, float, float, float]] = []
    cpu0, user0 = cpu_seconds(), user_cpu_seconds()

    def on_second(view: ProgressView) -> None:
        # The last view comes after the duration, when the users stopped: it holds the
        # teardown (closing every socket), which the other clients do after their last
        # sample too, so the samples end at the duration as theirs do.
        if view.elapsed_s > duration + 1e-3:
            return
        span = view.elapsed_s - (math.ceil(view.elapsed_s) - 1)
        per_second.append(
            (
                view.elapsed_s,
                view.received_per_s * span,
                cpu_seconds() - cpu0,
                user_cpu_seconds() - user0,
            )
        )

    scenario = Scenario(
        name="engine-echo",
        behaviour=BEHAVIOURS[kind],
        workload=closed(sockets, duration=duration),
        params={"url": url, "per_iteration": LOOP_PER_ITERATION},
        graceful_stop_s=2.0,
    )
    result = await run_scenario(
        scenario, processes=1, progress=on_second, deadline_s=duration + 30.0
    )
    from bench.table import cumulative

    trend = result.trend("round_trip")
    return {
        "samples": cumulative(per_second),
        "connect_s": None,
        "errors": result.count("errors"),
        "round_trip_p50_s": trend.p50,
        "round_trip_p99_s": trend.p99,
        "iterations": result.count("iterations"),
        "generator_saturated": result.generator.saturated,
    }


async def echo_counted_behaviour(session: Any) -> None:
    """:func:`echo_behaviour` for a counted run: iteration 0 opens the connection (with a
    timeout long enough for valgrind) and waits until every user has, so the counted round
    trips run with every socket open, as in a timed run's steady state."""
    if session.iteration == 0:
        barrier = session.params["barrier"]
        try:
            await session.connection(session.params["url"], auth=False, timeout=COUNTED_DEADLINE_S)
        except BaseException:
            await barrier.abort()  # the others would wait for this user for ever
            raise
        await barrier.wait()
        return
    ws = await session.connection(session.params["url"], auth=False)
    await ws.request_text(PAYLOAD, metric="round_trip", timeout=10.0)


async def _squall_counted(url: str, sockets: int, per_socket: int) -> dict[str, Any]:
    """``squall`` for ``per_socket`` round trips of each user, on one worker whose snapshot
    and loop-lag intervals outlast the run (so none of that work runs)."""
    from squall.engine import Scenario, closed
    from squall.engine.runner import Worker, WorkerPlan
    from squall.metrics.recorder import ERRORS, MESSAGES_RECEIVED

    scenario = Scenario(
        name="engine-echo-counted",
        behaviour=echo_counted_behaviour,
        workload=closed(sockets, iterations=per_socket + 1),
        params={"url": url, "barrier": asyncio.Barrier(sockets)},
        graceful_stop_s=2.0,
    )
    plan = WorkerPlan(
        scenario,
        worker=0,
        workers=1,
        users=range(sockets),
        deadline_s=COUNTED_DEADLINE_S,
        snapshot_interval_s=QUIET_INTERVAL_S,
        lag_interval_s=QUIET_INTERVAL_S,
    )
    report = await Worker(plan, scenario.resolve_behaviour(), lambda _snapshot: None).run(
        time.monotonic()
    )
    counters = report.state.counters
    return {
        "round_trips": counters.get(MESSAGES_RECEIVED, 0),
        "connect_s": None,
        "errors": counters.get(ERRORS, 0),
        "iterations": counters.get("iterations", 0),
        "interrupted": report.interrupted_reason,
    }


def command(
    kind: str, url: str, sockets: int, bound: str, value: str, cpu: int | None
) -> list[str]:
    """The command line that runs client ``kind`` in its own process: ``bound`` is
    ``--duration`` or ``--round-trips`` with ``value``, pinned to ``cpu`` if given."""
    argv = [sys.executable, "-m", "bench.clients", kind, "--url", url, "--sockets", str(sockets)]
    argv += [bound, value]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    return argv


def read_report(stdout: bytes) -> dict[str, Any]:
    """The JSON object a client printed last on stdout."""
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("kind", choices=("bare", "bare-tasks", *BEHAVIOURS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--sockets", type=int, required=True)
    bound = parser.add_mutually_exclusive_group(required=True)
    bound.add_argument("--duration", type=float, help="run for this many seconds")
    bound.add_argument(
        "--round-trips",
        type=int,
        help="instead: this many round trips per socket (iterations per user for squall)",
    )
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    if args.round_trips is not None and (
        args.kind not in ("bare-tasks", "squall") or args.round_trips < 1
    ):
        parser.error("--round-trips takes a count >= 1, with bare-tasks or squall")
    from squall.loopback import NotLoopback, require_loopback

    try:
        require_loopback(args.url, "--url")
    except NotLoopback as exc:
        raise SystemExit(str(exc)) from None
    cpus = pin(args.cpu)
    from squall.fdlimit import raise_open_files

    raise_open_files(args.sockets + 256)
    from squall.engine.runner import GC_YOUNG_THRESHOLD, fewer_collections

    # The bare loops run under the collector threshold an engine worker sets (squall's
    # own clients set it themselves).
    bare = args.kind in ("bare", "bare-tasks")
    with fewer_collections(GC_YOUNG_THRESHOLD) if bare else contextlib.nullcontext():
        out = _run_client(args)
    out.update({"kind": args.kind, "sockets": args.sockets, "cpus": cpus})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def _run_client(args: argparse.Namespace) -> dict[str, Any]:
    """Run the client ``args`` name to completion on uvloop; its report."""
    import uvloop

    if args.round_trips is not None:
        if args.kind == "bare-tasks":
            out = uvloop.run(_bare_tasks_counted(args.url, args.sockets, args.round_trips))
        else:
            out = uvloop.run(_squall_counted(args.url, args.sockets, args.round_trips))
    elif args.kind == "bare":
        out = uvloop.run(_bare(args.url, args.sockets, args.duration))
    elif args.kind == "bare-tasks":
        out = uvloop.run(_bare_tasks(args.url, args.sockets, args.duration))
    else:
        out = uvloop.run(_squall(args.url, args.sockets, args.duration, args.kind))
    return out


if __name__ == "__main__":
    main()
