"""Claiming queued runs fairly and safely across workers, and recovering orphaned runs.

Safety comes from PostgreSQL, not from the scheduler's memory: a run is claimed by an
``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`` that re-checks
``status = 'queued'`` on the latest row version, and the partial unique index
``runs_one_running_per_thread`` makes a second running run of one thread impossible
even if two workers race on one thread. Only the oldest queued run of a thread without a
running run is a candidate, so each thread's runs execute in arrival order. A claim also
takes its run off the thread's queued-run counter (``threads.queued``) in the same
statement.

Wake-ups: every submit and every finished run publishes on ``{prefix}:runs:wakeup``;
every worker listens and also polls every ``poll_s`` in case a message was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from squall.target import db, outage
from squall.target.db import Pool
from squall.target.fairness import Candidate, fair_order
from squall.target.ids import MessageID, RunID, ThreadID, UserID
from squall.target.runs import ClaimedRun

log = logging.getLogger(__name__)

#: Heads of idle threads considered per claim round (the best ones by SQL order).
CANDIDATE_LIMIT = 200

_CANDIDATES = """
WITH heads AS (
    SELECT DISTINCT ON (r.thread_id) r.id, r.user_id, r.thread_id, r.pos
    FROM runs r
    WHERE r.status = 'queued'
    ORDER BY r.thread_id, r.pos
), scored AS (
    SELECT h.id, h.user_id, h.thread_id, h.pos,
        (SELECT count(*) FROM runs x WHERE x.user_id = h.user_id AND x.status = 'running')
            AS user_running,
        (SELECT extract(epoch FROM max(x.started_at)) FROM runs x WHERE x.user_id = h.user_id)
            AS user_last_start
    FROM heads h
    WHERE NOT EXISTS (
        SELECT 1 FROM runs x WHERE x.thread_id = h.thread_id AND x.status = 'running'
    )
)
SELECT * FROM scored
ORDER BY user_running, user_last_start NULLS FIRST, pos
LIMIT $1
"""

#: The claim and the thread's queued-run counter (``threads.queued``, which the submit's
#: queue bound reads) change in one statement: both or neither. A unique violation on
#: ``runs_one_running_per_thread`` fails the whole statement, counter included.
_CLAIM = """
WITH claimed AS (
    UPDATE runs SET status = 'running', worker = $2, started_at = clock_timestamp()
    WHERE id = (SELECT id FROM runs WHERE id = $1 AND status = 'queued' FOR UPDATE SKIP LOCKED)
    RETURNING id, thread_id, user_id, message_id
), dequeued AS (
    UPDATE threads SET queued = queued - 1 WHERE id = (SELECT thread_id FROM claimed)
)
SELECT id, thread_id, user_id, message_id FROM claimed
"""

_ORPHANS = """
SELECT id, thread_id, user_id, message_id FROM runs
WHERE status = 'running' AND started_at < clock_timestamp() - make_interval(secs => $1)
ORDER BY started_at
LIMIT 100
"""


def _claimed(row: Any) -> ClaimedRun:
    return ClaimedRun(
        run_id=RunID(row["id"]),
        thread_id=ThreadID(row["thread_id"]),
        user_id=UserID(row["user_id"]),
        message_id=MessageID(row["message_id"]),
    )


async def claim(pool: Pool, worker: str, slots: int, now: float) -> list[ClaimedRun]:
    """Claim up to ``slots`` queued runs for ``worker``, fairest first."""
    if slots <= 0:
        return []
    rows = await pool.fetch(_CANDIDATES, CANDIDATE_LIMIT)
    candidates = [
        Candidate(
            run_id=r["id"],
            user_id=r["user_id"],
            thread_id=r["thread_id"],
            position=int(r["pos"]),
            user_running=int(r["user_running"]),
            user_last_start=None if r["user_last_start"] is None else float(r["user_last_start"]),
        )
        for r in rows
    ]
    claimed: list[ClaimedRun] = []
    for candidate in fair_order(candidates, now):
        if len(claimed) >= slots:
            break
        try:
            row = await pool.fetchrow(_CLAIM, candidate.run_id, worker)
        except asyncpg.UniqueViolationError:
            continue  # another worker started a run of this thread a moment ago
        if row is not None:
            claimed.append(_claimed(row))
    return claimed


async def orphans(pool: Pool, older_than_s: float) -> list[ClaimedRun]:
    """Runs marked running for longer than ``older_than_s``, by any worker.

    They are orphaned only if their thread lock is gone too, and the caller's own runs
    only if it is not executing them: the caller checks both. The caller's own worker is
    not left out: a run of it whose end could not be stored (the database stayed away
    longer than ``SQUALL_DATABASE_OUTAGE_WAIT_S``) is running in the database only, and
    on a platform of one worker nobody else would ever end it.
    """
    return [_claimed(r) for r in await pool.fetch(_ORPHANS, older_than_s)]


async def running_on(pool: Pool, worker: str) -> list[ClaimedRun]:
    """The runs ``worker`` holds as ``running``."""
    rows = await pool.fetch(
        "SELECT id, thread_id, user_id, message_id FROM runs "
        "WHERE status = 'running' AND worker = $1",
        worker,
    )
    return [_claimed(r) for r in rows]


async def queued_count(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM runs WHERE status = 'queued'"))


class Scheduler:
    """Claims runs whenever this worker has free slots and something may be queued."""

    def __init__(
        self,
        *,
        pool: Pool,
        redis: Any,
        listener: Any,
        channel: str,
        worker: str,
        free_slots: Callable[[], int],
        start_run: Callable[[ClaimedRun], None],
        recover: Callable[[], Awaitable[None]],
        poll_s: float = 0.5,
        recover_every_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._redis = redis
        #: A client of its own for the wake-up subscription (it holds its connection).
        self._listener = listener
        self._channel = channel
        self._worker = worker
        self._free_slots = free_slots
        self._start_run = start_run
        self._recover = recover
        self._poll_s = poll_s
        self._recover_every_s = recover_every_s
        self._wake = asyncio.Event()
        self._publishing = False
        self._publish_again = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._claiming = False

    def __repr__(self) -> str:
        return f"Scheduler(worker={self._worker!r}, free_slots={self._free_slots()})"

    async def start(self) -> None:
        pubsub = self._listener.pubsub()
        await pubsub.subscribe(self._channel)
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="runs-wakeup-listener"),
            asyncio.create_task(self._loop(), name="runs-scheduler"),
        ]
        self._wake.set()

    async def notify(self) -> None:
        """Wake every worker's scheduler (this one included).

        Wake-ups coalesce: while one publish is in flight, further calls only ask for
        one more publish after it, so a burst of submits costs two messages, not one
        per submit, and every submit is still followed by a wake-up sent after it.
        """
        self._wake.set()
        if self._publishing:
            self._publish_again = True
            return
        self._publishing = True
        try:
            while True:
                self._publish_again = False
                try:
                    await self._redis.publish(self._channel, self._worker)
                except (RedisError, OSError) as exc:
                    log.warning(
                        "publishing a run wake-up failed (%s); other workers will poll", exc
                    )
                except Exception:
                    log.warning(
                        "publishing a run wake-up failed; other workers will poll", exc_info=True
                    )
                if not self._publish_again:
                    return
        finally:
            self._publishing = False

    async def stop(self) -> bool:
        """Stop claiming; returns whether a claim was under way. Its statements run one
        run at a time and the runs claimed so far start only once all are done, so a stop
        in the middle can leave runs claimed (``running`` on this worker) that never
        started: the caller gives them back (``Runtime.close``)."""
        self._stopping = True
        claiming = self._claiming
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._listener.aclose()
        return claiming

    async def _listen(self, pubsub: Any) -> None:
        lost = False
        try:
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError) as exc:
                    # Once per outage: the poll finds queued runs meanwhile.
                    if not lost:
                        log.warning("run wake-up subscription failed (%s); retrying", exc)
                    lost = True
                    await asyncio.sleep(self._poll_s)
                    continue
                except Exception:
                    log.warning("run wake-up subscription failed; retrying", exc_info=True)
                    await asyncio.sleep(self._poll_s)
                    continue
                if lost:
                    log.warning("run wake-up subscription is back")
                    lost = False
                if message is not None:
                    self._wake.set()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _loop(self) -> None:
        next_recovery = time.monotonic() + self._recover_every_s
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
            self._wake.clear()
            try:
                free = self._free_slots()
                if free > 0:
                    self._claiming = True
                    try:
                        claimed = await claim(self._pool, self._worker, free, time.time())
                    finally:
                        self._claiming = False
                    for run in claimed:
                        self._start_run(run)
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + self._recover_every_s
                    await self._recover()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("claiming runs failed (%s); retrying after the poll interval", exc)
            except Exception as exc:
                if db.connection_lost(exc):
                    log.warning(
                        "claiming runs failed (%s); retrying after the poll interval",
                        outage.describe(exc),
                    )
                else:
                    log.exception("claiming runs failed; retrying after the poll interval")
