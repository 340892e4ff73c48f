"""Benchmark 3: how many idle authenticated sockets the platform holds, and RSS per socket.

Sockets are opened in steps (each a distinct user, so the per-user socket cap
does not apply), each counted only once the platform's ``hello`` arrived, i.e.
after authentication and admission. After every step the platform's process
group (the serve command and its workers) is sampled with ``squall.monitor``.
The ramp stops at the bound or at the first step with a failure; RSS per socket
is the growth over the idle baseline divided by the sockets held.

Open-file limit: each socket is one descriptor in the platform and one in this
client, so the bench process raises ``RLIMIT_NOFILE`` (the platform inherits it)
to the bound plus headroom. Goal: 10,000 sockets at < 20 KB each.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.record import Result, command_line, log, measured
from bench.stack import platform_stack
from bench.table import Goal, fmt_count, fmt_kb
from squall.engine import WebSocket
from squall.engine.client import connect
from squall.fdlimit import raise_open_files
from squall.metrics.recorder import Recorder
from squall.monitor import ResourceMonitor, target_group
from squall.scenarios.target import TargetInfo

NAME = "connections"
TITLE = "3. Connections: idle authenticated sockets held by the platform (2 workers)"
CONCURRENT_OPENS = 50
HELLO_TIMEOUT_S = 20.0
GOAL_SOCKETS = 10_000
GOAL_BYTES_PER_SOCKET = 20 * 1024


async def _open_one(target: TargetInfo, index: int, recorder: Recorder) -> WebSocket:
    identity = target.identities("bench-idle")(index)
    ws = await connect(
        target.ws_url,
        recorder,
        time.monotonic,
        headers=identity.auth_headers(),
        timeout=HELLO_TIMEOUT_S,
    )
    try:
        hello = await ws.recv_json(timeout=HELLO_TIMEOUT_S)
    except BaseException:
        await ws.close(timeout=1.0)
        raise
    if hello.get("type") != "hello":
        await ws.close(timeout=1.0)
        raise ConnectionError(f"socket {index}: expected hello, got {hello!r}")
    return ws


async def _open_step(
    target: TargetInfo, first: int, count: int, recorder: Recorder
) -> tuple[list[WebSocket], list[str]]:
    gate = asyncio.Semaphore(CONCURRENT_OPENS)

    async def one(index: int) -> WebSocket:
        async with gate:
            return await _open_one(target, index, recorder)

    outcomes = await asyncio.gather(
        *(one(i) for i in range(first, first + count)), return_exceptions=True
    )
    opened = [o for o in outcomes if isinstance(o, WebSocket)]
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return opened, failures


async def _ramp(
    target: TargetInfo, bound: int, step: int, pid: int
) -> tuple[list[dict[str, Any]], list[str]]:
    recorder = Recorder()
    monitor = ResourceMonitor([target_group([pid])])
    await asyncio.to_thread(monitor.sample_once)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(monitor.sample_once)  # idle baseline, CPU settled
    sockets: list[WebSocket] = []
    failures: list[str] = []
    began = time.monotonic()
    try:
        while len(sockets) < bound and not failures:
            count = min(step, bound - len(sockets))
            opened, failures = await _open_step(target, len(sockets), count, recorder)
            sockets.extend(opened)
            await asyncio.sleep(0.5)  # let the workers finish admission bookkeeping
            await asyncio.to_thread(monitor.sample_once)
            alive = sum(1 for s in sockets if not s.closed)
            log(
                f"  {alive:,} sockets open ({len(failures)} failures in this step), "
                f"{time.monotonic() - began:.1f} s"
            )
        await asyncio.sleep(2.0)
        await asyncio.to_thread(monitor.sample_once)  # held idle for a moment
        held = sum(1 for s in sockets if not s.closed)
    finally:
        for first in range(0, len(sockets), 500):
            await asyncio.gather(
                *(s.close(timeout=2.0) for s in sockets[first : first + 500]),
                return_exceptions=True,
            )
    report = monitor.report().groups["target"]
    series = [s.to_dict() for s in report.series]
    steps = [
        {"sample": i, "rss_mb": s["rss_mb"], "open_files": s["open_files"]}
        for i, s in enumerate(series)
    ]
    steps.append({"held": held, "elapsed_s": time.monotonic() - began})
    return steps, failures


def run(quick: bool) -> Result:
    result = Result(NAME, TITLE, quick, command_line(NAME, quick))
    bound = 1_000 if quick else GOAL_SOCKETS
    step = 250 if quick else 1_000
    limits = raise_open_files(2 * bound + 4096)
    log(f"connections: RLIMIT_NOFILE now {limits}; ramp to {bound:,} in steps of {step:,}")
    entry: dict[str, Any] = {"bound": bound, "step": step, "nofile": list(limits)}
    with platform_stack(workers=2) as stack, measured(entry):
        steps, failures = asyncio.run(_ramp(stack.target, bound, step, stack.platform.pid))
    held = int(steps[-1]["held"])
    samples = steps[:-1]
    baseline_mb = samples[1]["rss_mb"]
    peak_mb = max(s["rss_mb"] for s in samples)
    last_mb = samples[-1]["rss_mb"]
    per_socket = (last_mb - baseline_mb) * 1024 * 1024 / held if held else None
    entry.update(
        {
            "held": held,
            "failures": failures[:5],
            "failure_count": len(failures),
            "baseline_rss_mb": baseline_mb,
            "held_rss_mb": last_mb,
            "peak_rss_mb": peak_mb,
            "bytes_per_socket": per_socket,
            "elapsed_s": steps[-1]["elapsed_s"],
            "samples": samples,
        }
    )
    result.measurements.append(entry)
    log(f"  held {held:,}; {fmt_kb(per_socket)} per socket")
    stopped = f"first failures ({failures[0][:80]})" if failures else "the bound"
    result.table = {
        "columns": [
            "sockets held",
            "stopped at",
            "platform RSS idle",
            "platform RSS held",
            "RSS per socket",
            "open time",
        ],
        "rows": [
            [
                fmt_count(held),
                stopped,
                f"{baseline_mb:.0f} MB",
                f"{last_mb:.0f} MB",
                fmt_kb(per_socket),
                f"{entry['elapsed_s']:.0f} s",
            ]
        ],
    }
    result.goals += [
        Goal("sockets held", float(held), float(GOAL_SOCKETS), unit="").to_dict(),
        Goal(
            "RSS per socket (KB)",
            None if per_socket is None else per_socket / 1024,
            GOAL_BYTES_PER_SOCKET / 1024,
            at_least=False,
            unit="KB",
        ).to_dict(),
    ]
    result.notes += [
        f"each socket is a distinct user, counted after its hello (authenticated, admitted); "
        f"opened {CONCURRENT_OPENS} at a time in steps of {step:,}.",
        "RSS is summed over the platform's process group (serve command + 2 workers); "
        "per socket = (RSS held − RSS idle) / sockets held.",
        f"the bench process raises RLIMIT_NOFILE to {limits[0]:,} and the platform inherits "
        "it: the platform needs one descriptor per socket plus its database and Redis pools.",
    ]
    return result
