"""Prometheus text for ``/metrics``: counters summed over all workers, gauges per worker.

Each worker counts locally (a dict increment, no I/O on the hot path) and a
flusher writes its totals into one Redis hash every second (see :class:`Counters`),
so any worker answering ``/metrics`` reports cluster totals, at most one flush
interval stale. Gauges (open sockets, runtime stats) describe the answering
worker and carry its ``worker`` label. Rendering is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

log = logging.getLogger("squall.target.metrics")

FLUSH_INTERVAL_S = 1.0
NAMESPACE = "squall_target_"

#: Every family ``/metrics`` can show (without the namespace), with its ``# HELP`` text;
#: docs/protocol.md lists the same. Counters summed over all workers first, then the
#: answering worker's own series (labelled ``worker``).
HELP: Mapping[str, str] = {
    # Summed over all workers (flushed to Redis every second).
    "worker_starts_total": "Worker processes started, replacements included.",
    "sockets_opened_total": (
        "WebSocket connections admitted (a valid token, within the per-user cap)."
    ),
    "sockets_closed_total": (
        "Admitted WebSocket connections closed, by the platform's close code "
        "(1006: dropped after the write timeout; client: the client closed or went away)."
    ),
    "frames_received_total": "WebSocket frames received.",
    "frames_sent_total": "WebSocket frames sent.",
    "messages_accepted_total": "user_message frames accepted (acked and debited).",
    "errors_total": "Error answers (error frames and HTTP errors), by error code.",
    "auth_failures_total": "Requests and connections refused for a missing or bad token.",
    "events_skipped_total": (
        "Live events not sent to a socket, by reason "
        "(drop: already delivered; hold: a replay delivers it)."
    ),
    "fills_total": (
        "Replays from the stored events, by kind (resume: asked by the client; gap: a missing seq)."
    ),
    "slow_consumer_closes_total": "Sockets closed because their send queue was full.",
    "write_timeouts_total": (
        "Sockets closed because a send waited longer than SQUALL_SOCKET_WRITE_TIMEOUT_S."
    ),
    # The answering worker's own.
    "sockets_open": "Open WebSocket connections.",
    "hub_users": "Users with a socket on this worker (pub/sub subscriptions).",
    "pubsub_resyncs_total": "Pub/sub reconnections, each followed by a resync of the sockets.",
    "pubsub_republished_total": "Events published again after a PUBLISH found Redis unreachable.",
    "pubsub_republish_backlog": "Events waiting to be published again.",
    "worker_start_time_seconds": "When this worker started (Unix time).",
    "redis_up": "1 if Redis answered this scrape, else 0 (the summed counters are then left out).",
    "database_up": "1 if PostgreSQL answered this scrape, else 0 (runs_queued is then left out).",
    "runs_running": "Agent runs executing.",
    "run_slots": "Agent runs this worker may execute at once (SQUALL_RUN_CONCURRENCY).",
    "runs_queued": "Runs waiting to be claimed, all workers.",
    "runs_submitted_total": "Runs created by accepted messages.",
    "runs_claimed_total": "Runs claimed for execution.",
    "runs_completed_total": "Runs that ended completed.",
    "runs_failed_total": "Runs that ended failed (refunded).",
    "runs_cancelled_total": "Runs that ended cancelled (refunded).",
    "runs_recovered_total": "Orphaned runs (their worker gone) ended failed and refunded here.",
    "submit_statements_total": "Billing statements sent (batches and lone submits).",
    "submit_batches_total": "Billing statements that carried a batch of submits.",
    "submit_batched_total": "Submits sent in those batches.",
    "submit_batch_fallbacks_total": "Batches retried one submit at a time.",
}


#: The cluster counters without labels: ``/metrics`` shows each from the start, at 0
#: (absent until their first count, a rate over one read "no data" rather than 0).
UNLABELLED_COUNTERS = (
    "auth_failures_total",
    "frames_received_total",
    "frames_sent_total",
    "messages_accepted_total",
    "slow_consumer_closes_total",
    "sockets_opened_total",
    "worker_starts_total",
    "write_timeouts_total",
)


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
            lines.extend(_header(name, "counter"))
        lines.append(f"{NAMESPACE}{key} {_number(counters[key])}")
    for key in sorted(gauges):
        name = key.split("{", 1)[0]
        if name not in typed:
            typed.add(name)
            lines.extend(_header(name, "counter" if name.endswith("_total") else "gauge"))
        labelled = series(key, worker=str(worker)) if "{" not in key else key
        lines.append(f"{NAMESPACE}{labelled} {_number(gauges[key])}")
    return "\n".join(lines) + "\n"


def _header(name: str, kind: str) -> list[str]:
    """The ``# HELP`` (for a family in :data:`HELP`) and ``# TYPE`` lines of ``name``."""
    described = HELP.get(name)
    typed = f"# TYPE {NAMESPACE}{name} {kind}"
    if described is None:
        return [typed]
    return [f"# HELP {NAMESPACE}{name} {described}", typed]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counters:
    """This worker's counts since it started, and the flusher that publishes them.

    Every second the worker writes its running totals, as they are (``HSET``, a field
    ``<worker>|<series>`` each), into one Redis hash; :meth:`totals` sums the fields of
    every worker. Totals rather than increments make a flush safe to repeat: one that a
    stalled Redis runs twice (the command sent again after its timeout, see
    ``redis_pool``), or that fails and goes with the next one, counts nothing twice. A Redis
    that comes back empty has every running worker's totals again at its next flush; what
    workers no longer running counted is lost with it.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str, worker: str | None = None) -> None:
        self._redis = redis
        self._key = f"{prefix}:counters"
        #: Unique to this worker process (a pid is reused): the prefix of its fields.
        self._worker = worker or f"{os.getpid()}-{secrets.token_hex(4)}"
        self._totals: dict[str, float] = defaultdict(float)
        self._task: asyncio.Task[None] | None = None

    def inc(self, key: str, amount: float = 1.0) -> None:
        self._totals[key] += amount

    async def flush(self) -> None:
        if not self._totals:
            return
        worker = self._worker
        mapping: dict[FieldT, EncodableT] = {
            f"{worker}|{key}": amount for key, amount in self._totals.items()
        }
        try:
            await self._redis.hset(self._key, mapping=mapping)
        except (RedisError, OSError) as exc:
            log.warning("metrics flush failed (%s); the next one writes the totals again", exc)

    async def totals(self) -> dict[str, float]:
        """Cluster-wide counters: every worker's flushed totals, this worker's as they are."""
        stored = await self._redis.hgetall(self._key)
        totals: dict[str, float] = defaultdict(float)
        for field, value in stored.items():
            worker, separator, key = str(field).partition("|")
            if separator and worker != self._worker:
                totals[key] += float(value)
        for key, amount in self._totals.items():
            totals[key] += amount
        return dict(totals)

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
