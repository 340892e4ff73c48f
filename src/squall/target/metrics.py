"""Prometheus text for ``/metrics``: counters summed over all workers, gauges per worker.

Each worker counts locally (a dict increment, no I/O on the hot path) and a
flusher moves the deltas into one Redis hash every second with ``HINCRBYFLOAT``,
so any worker answering ``/metrics`` reports cluster totals, at most one flush
interval stale. Gauges (open sockets, runtime stats) describe the answering
worker and carry its ``worker`` label. Rendering is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("squall.target.metrics")

FLUSH_INTERVAL_S = 1.0
NAMESPACE = "squall_target_"


def series(name: str, **labels: str) -> str:
    """A series key like ``errors_total{code="bad_frame"}`` (labels sorted, values escaped)."""
    if not labels:
        return name
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(counters: Mapping[str, float], gauges: Mapping[str, float], *, worker: int) -> str:
    """Prometheus text: cluster counters, then this worker's series (labelled ``worker``)."""
    lines: list[str] = []
    typed: set[str] = set()
    for key in sorted(counters):
        name = key.split("{", 1)[0]
        if name not in typed:
            typed.add(name)
            lines.append(f"# TYPE {NAMESPACE}{name} counter")
        lines.append(f"{NAMESPACE}{key} {_number(counters[key])}")
    for key in sorted(gauges):
        name = key.split("{", 1)[0]
        if name not in typed:
            typed.add(name)
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# TYPE {NAMESPACE}{name} {kind}")
        labelled = series(key, worker=str(worker)) if "{" not in key else key
        lines.append(f"{NAMESPACE}{labelled} {_number(gauges[key])}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counters:
    """This worker's unflushed counter deltas, and the flusher that publishes them."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._key = f"{prefix}:metrics"
        self._pending: dict[str, float] = defaultdict(float)
        self._task: asyncio.Task[None] | None = None

    def inc(self, key: str, amount: float = 1.0) -> None:
        self._pending[key] += amount

    async def flush(self) -> None:
        if not self._pending:
            return
        # Swap first: increments made while the pipeline is in flight go to the next flush.
        pending, self._pending = self._pending, defaultdict(float)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, amount in pending.items():
                    pipe.hincrbyfloat(self._key, key, amount)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("metrics flush failed (%s); keeping the deltas for the next one", exc)
            for key, amount in pending.items():
                self._pending[key] += amount

    async def totals(self) -> dict[str, float]:
        """Cluster-wide counters, including this worker's unflushed deltas."""
        stored = await self._redis.hgetall(self._key)
        totals = {str(k): float(v) for k, v in stored.items()}
        for key, amount in self._pending.items():
            totals[key] = totals.get(key, 0.0) + amount
        return totals

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="squall-metrics-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()
