"""Execute one claimed run: lock, context, history_search tool, streamed answer, completion.

Every database write of the run carries its fencing token, and every event is published
only after the transaction that stored it commits, in order, from this one task, so the
thread's subscribers see seq ascending. A failure refunds the run; a cancellation
(shutdown) refunds it too; a ``StaleFence`` means another holder took the thread over
(e.g. recovery after this worker stalled past the lock TTL) and already finalised the
run, so this writer stops without writing anything else. A lost database connection is
not a failure: each step waits for the database to come back (``db.retrying``) and never
writes an event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from redis.exceptions import RedisError

from squall.target import billing, db, events, outage
from squall.target.context import ContextMessage, build_context, search_query
from squall.target.db import Pool
from squall.target.errors import StaleFence
from squall.target.events import EventType
from squall.target.ids import UserID, new_message_id
from squall.target.locks import RunLock
from squall.target.model import Model, ModelError
from squall.target.runs import ClaimedRun, RunStatus
from squall.target.settings import Settings

log = logging.getLogger(__name__)

Publish = Callable[[UserID, dict[str, Any]], Awaitable[None]]

SYSTEM_PROMPT = (
    "You are the squall reference agent. Answer the user's latest message using the "
    "conversation so far, their preferences and the history_search tool."
)
HISTORY_SEARCH_LIMIT = 20
#: Pauses between attempts at a thread lock still held by its previous run (which is
#: usually publishing its last event and about to release it): short first, doubling.
LOCK_WAIT_FIRST_S = 0.002
LOCK_WAIT_STEP_S = 0.02


@dataclass
class AgentDeps:
    """What a run needs from its worker."""

    pool: Pool
    lock: RunLock
    settings: Settings
    model: Model
    publish: Publish
    #: One line describing the worker now (runs running, completed), for the context.
    system_state: Callable[[], str]
    #: Told how each run this worker ended finished (completed, failed or cancelled): once
    #: per run, after the transaction that ended it committed.
    ended: Callable[[RunStatus], None]


class _Run:
    def __init__(self, deps: AgentDeps, run: ClaimedRun, token: int, charge: int) -> None:
        self.deps = deps
        self.run = run
        self.token = token
        #: The run's ledger amount, read when the fence was taken (it never changes).
        self.charge = charge

        self.enforce = not deps.settings.fault("no_fencing")
        #: How this run ended, once its completion committed (None while it runs).
        self.ended: RunStatus | None = None
        self.content = ""
        self.prompt_tokens = 0

    async def _append(
        self, conn: Any, type_: EventType, fields: dict[str, Any], ts: float
    ) -> dict[str, Any]:
        return await events.append(
            conn,
            self.run.thread_id,
            self.run.run_id,
            type_,
            fields,
            fence=self.token,
            enforce_fence=self.enforce,
            retention=self.deps.settings.replay_retention_events,
            ts=ts,
        )

    async def store(
        self,
        type_: EventType,
        fields: dict[str, Any],
        also: Callable[[Any], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Store one event (with ``also``'s writes in the same transaction) and return it.

        A lost database connection is waited out (:func:`db.retrying`); whether the lost
        attempt committed is read back from the event itself, so nothing is written twice.
        """
        ts = time.time()

        async def attempt() -> dict[str, Any]:
            if also is None:
                # One statement, committed on its own: no transaction round trips around it.
                return await self._append(self.deps.pool, type_, fields, ts)
            async with self.deps.pool.acquire() as conn, conn.transaction():
                event = await self._append(conn, type_, fields, ts)
                await also(conn)
                return event

        async def committed() -> dict[str, Any] | None:
            run = self.run
            return await events.stored(self.deps.pool, run.thread_id, run.run_id, type_, ts)

        return await db.retrying(
            f"run {self.run.run_id} storing {type_}",
            attempt,
            committed=committed,
            within_s=self.deps.settings.database_outage_wait_s,
        )

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            await self.deps.publish(self.run.user_id, event)
        except (RedisError, OSError) as exc:
            # Stored already: the sockets replay it when their pub/sub is back (hub resync),
            # and the hub publishes it again once Redis answers if it was unreachable.
            log.warning("publishing %s seq %s failed: %s", event["type"], event["seq"], exc)
        except Exception:
            log.exception("publishing %s seq %s failed", event["type"], event["seq"])

    async def emit(self, type_: EventType, fields: dict[str, Any]) -> None:
        await self.publish(await self.store(type_, fields))

    async def work(self) -> None:
        deps, run = self.deps, self.run
        wait_s = deps.settings.database_outage_wait_s
        rows, prefs = await db.retrying(
            f"run {run.run_id} reading its context", self._context, within_s=wait_s
        )
        history = [ContextMessage(r["role"], r["content"]) for r in rows]
        system = f"{SYSTEM_PROMPT}\nsystem state: {deps.system_state()}"
        context = build_context(system, prefs or {}, history, deps.settings.context_budget_tokens)
        self.prompt_tokens = context.tokens
        await self.emit(EventType.AGENT_STARTED, {"context": context.report()})

        query = search_query(history[-1].content if history else "")
        await self.emit(EventType.TOOL_EXECUTING, {"tool": "history_search", "query": query})
        started = time.perf_counter()
        results = 0
        if query:
            results = await db.retrying(
                f"run {run.run_id} searching its history",
                lambda: self._search(query),
                within_s=wait_s,
            )
        duration_ms = (time.perf_counter() - started) * 1000
        await self.emit(
            EventType.TOOL_COMPLETED,
            {"tool": "history_search", "results": results, "duration_ms": duration_ms},
        )

        async for chunk in deps.model.stream(context):
            self.content += chunk
            await self.emit(EventType.AGENT_THINKING, {"text": chunk})

        answer_id = new_message_id()

        async def answer(conn: Any) -> None:
            await conn.execute(
                "WITH answer AS (INSERT INTO messages (id, thread_id, user_id, role, content, "
                "run_id) VALUES ($1, $2, $3, 'assistant', $4, $5)) "
                "UPDATE runs SET status = 'completed', finished_at = now() WHERE id = $5",
                answer_id,
                run.thread_id,
                run.user_id,
                self.content,
                run.run_id,
            )

        completed = self._completed(RunStatus.COMPLETED, self.charge)
        event = await self.store(EventType.AGENT_COMPLETED, completed, answer)
        self.ended = RunStatus.COMPLETED
        await self.publish(event)

    async def _context(self) -> tuple[list[Any], Any]:
        """The thread's recent messages and the user's preferences, for the context."""
        run = self.run
        async with self.deps.pool.acquire() as conn:
            # Earlier messages plus every answer (runs of a thread are sequential, so all
            # answers precede this run), ending with the message being answered; user
            # messages queued after it are not part of its conversation yet.
            rows = await conn.fetch(
                """
                WITH current AS (SELECT pos FROM messages WHERE id = $2)
                SELECT role, content FROM (
                    SELECT m.role, m.content, m.pos, m.id = $2 AS is_current FROM messages m
                    WHERE m.thread_id = $1
                      AND (m.pos <= (SELECT pos FROM current) OR m.role = 'assistant')
                    ORDER BY m.id = $2 DESC, m.pos DESC LIMIT $3
                ) recent ORDER BY is_current, pos
                """,
                run.thread_id,
                run.message_id,
                self.deps.settings.history_messages,
            )
            prefs = await conn.fetchval(
                "SELECT preferences FROM preferences WHERE user_id = $1", run.user_id
            )
        return list(rows), prefs

    async def _search(self, query: str) -> int:
        """The history_search tool: how many of the thread's messages match ``query``."""
        return int(
            await self.deps.pool.fetchval(
                """
                SELECT count(*) FROM (
                    SELECT 1 FROM messages
                    WHERE thread_id = $1 AND search @@ websearch_to_tsquery('simple', $2)
                    LIMIT $3
                ) hits
                """,
                self.run.thread_id,
                query,
                HISTORY_SEARCH_LIMIT,
            )
        )

    def _completed(self, status: RunStatus, charge: int) -> dict[str, Any]:
        return {
            "status": str(status),
            "content": self.content,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.deps.model.completion_tokens(self.content)
                if self.content
                else 0,
            },
            "charge": charge,
        }

    async def finish_unsuccessfully(self, status: RunStatus, error: str) -> None:
        """Refund, mark the run ``status`` and publish ``agent_completed`` in one transaction.

        Only a run still ``running`` is finished so: a cancellation that interrupts the run
        after its completion committed (while the commit's answer or the publish was under
        way) finds it over, keeps it as it is and publishes its stored ``agent_completed``
        again (a socket drops a seq it already delivered), so no run ends twice.
        """
        run = self.run

        async def refund(conn: Any) -> None:
            finished = await conn.fetchval(
                "UPDATE runs SET status = $2, finished_at = now(), error = $3 "
                "WHERE id = $1 AND status = 'running' RETURNING 1",
                run.run_id,
                str(status),
                error[:500],
            )
            if finished is None:
                raise _RunOver(run.run_id)  # rolls the appended event back
            await billing.refund(conn, run.run_id)

        fields = self._completed(status, 0)
        try:
            event = await self.store(EventType.AGENT_COMPLETED, fields, refund)
            self.ended = status
        except _RunOver:
            stored = await db.retrying(
                f"run {run.run_id} reading its completion",
                lambda: events.last_of_run(
                    self.deps.pool, run.thread_id, run.run_id, EventType.AGENT_COMPLETED
                ),
                within_s=self.deps.settings.database_outage_wait_s,
            )
            if stored is None:
                return
            event = stored
            # Its append passed this run's fence, so the completion found is this run's
            # own (committed while the commit's answer was under way).
            self.ended = RunStatus(stored["status"])
        await self.publish(event)


class _RunOver(Exception):
    """The run is no longer ``running``: its completion (or a refund) committed already."""


async def _keep_lock(
    lock: RunLock, run: ClaimedRun, token: int, over: Callable[[], bool], stop: asyncio.Event
) -> None:
    """Refresh the lock every third of its TTL until ``stop`` is set, the run is ``over``
    (its end committed) or the lock is lost.

    It is stopped by ``stop``, not by cancelling it: on Python 3.11 redis-py can drop a
    cancellation that arrives as a command completes (its ``asyncio.wait_for`` returns the
    result instead, CPython gh-86296), and a refresher that missed its cancellation would
    refresh the lock for good while the run waited for it to end, so every later run of
    the thread would find the lock held and go back to the queue, again and again. It stops
    at the run's end too: after it the run only publishes its last event and releases the
    lock, and should that never return, a lock left alone lapses within one TTL.
    """
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(lock.ttl_ms / 3000):
                await stop.wait()
        if stop.is_set() or over():
            return
        try:
            held = await lock.refresh(run.thread_id, token)
        except (RedisError, OSError) as exc:
            log.warning("refreshing the lock of thread %s failed: %s", run.thread_id, exc)
            continue
        except Exception:
            log.warning("refreshing the lock of thread %s failed", run.thread_id, exc_info=True)
            continue
        if not held:
            # Carry on: if another holder took the thread, fencing rejects our next write.
            log.warning("run %s lost its lock on thread %s", run.run_id, run.thread_id)
            return


def _cancel_swallowed() -> bool:
    """Whether this task was asked to cancel and is still running: the request was lost
    in an await that returned instead of raising (see :func:`_acquire`)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _acquire(lock: RunLock, run: ClaimedRun) -> int | None:
    """Wait up to one TTL for a lock still held by a stalled or finishing holder, or for a
    Redis that is restarting or out of reach (the run is requeued if it does not come)."""
    deadline = time.monotonic() + lock.ttl_ms / 1000
    pause = LOCK_WAIT_FIRST_S
    unreachable = False
    while True:
        try:
            token = await lock.acquire(run.thread_id)
        except (RedisError, OSError) as exc:
            if not unreachable:
                log.warning("run %s waits for Redis to take its lock: %s", run.run_id, exc)
            unreachable = True
            token = None
        if _cancel_swallowed():
            # Cancelled (a shutdown) as the command answered: on Python 3.11 redis-py then
            # returns the answer and the cancellation is lost (CPython gh-86296); without
            # this check the run waited out the lock's TTL and ran after its shutdown.
            if token is not None:
                with contextlib.suppress(RedisError, OSError):
                    await lock.release(run.thread_id, token)
            raise asyncio.CancelledError
        if token is not None or time.monotonic() >= deadline:
            return token
        await asyncio.sleep(pause)
        pause = min(LOCK_WAIT_STEP_S, pause * 2)


async def _take_fence(deps: AgentDeps, run: ClaimedRun, token: int) -> int | None:
    """Record ``token`` on the thread; return the run's charge (its ledger amount), or
    ``None`` if this run is no longer ours to execute."""
    async with deps.pool.acquire() as conn, conn.transaction():
        newer = await events.claim_fence(conn, run.thread_id, token)
        if newer is not None:
            await deps.lock.raise_floor(run.thread_id, newer)
            return None
        row = await conn.fetchrow(
            "SELECT r.status, coalesce(l.amount, 0) AS charge FROM runs r "
            "LEFT JOIN ledger l ON l.run_id = r.id WHERE r.id = $1",
            run.run_id,
        )
        if row is None or row["status"] != RunStatus.RUNNING:
            return None
        return int(row["charge"])


async def requeue(pool: Pool, run: ClaimedRun, worker: str) -> bool:
    """Give a claimed run back to the queue (its thread lock could not be taken, or the
    worker stopped before it began); returns whether it went back.

    The run and the thread's queued-run counter change together. The thread row is
    locked first, the order of every other transaction that writes both (submit,
    completion, a recovery failing this very run), so none of them can deadlock with it.
    A run that has stored an event has begun and is never given back (it is finished
    instead: cancelled, failed, or by orphan recovery).
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM threads WHERE id = $1 FOR NO KEY UPDATE", run.thread_id)
        requeued = await conn.fetchval(
            "WITH requeued AS ("
            "UPDATE runs r SET status = 'queued', worker = NULL, started_at = NULL "
            "WHERE id = $1 AND status = 'running' AND worker = $2 AND NOT EXISTS ("
            "SELECT 1 FROM events e WHERE e.thread_id = r.thread_id AND e.run_id = r.id) "
            "RETURNING thread_id), "
            "counted AS (UPDATE threads SET queued = queued + 1 "
            "WHERE id = (SELECT thread_id FROM requeued)) "
            "SELECT count(*) FROM requeued",
            run.run_id,
            worker,
        )
    return bool(requeued)


async def _requeue(deps: AgentDeps, run: ClaimedRun, worker: str) -> None:
    """:func:`requeue`, waiting out a lost database connection (requeueing twice is a no-op)."""
    await db.retrying(
        f"run {run.run_id} requeueing",
        lambda: requeue(deps.pool, run, worker),
        within_s=deps.settings.database_outage_wait_s,
    )


async def execute(deps: AgentDeps, run: ClaimedRun, worker: str) -> None:
    """Execute ``run`` to its end. How a run this call ended finished is told to
    ``deps.ended``, a cancelled one's too; one it did not end (not ours, given back to the
    queue, fenced out) is not."""
    token = await _acquire(deps.lock, run)
    if token is None:
        await _requeue(deps, run, worker)
        return
    state: _Run | None = None
    stop = asyncio.Event()
    refresher = asyncio.create_task(
        _keep_lock(
            deps.lock, run, token, lambda: state is not None and state.ended is not None, stop
        )
    )
    try:
        try:
            # Lost with its connection, the fence is taken again: a fence that did commit
            # reads as newer than our token, and the run is requeued (safe, if wasteful).
            charge = await db.retrying(
                f"run {run.run_id} taking its fence",
                lambda: _take_fence(deps, run, token),
                within_s=deps.settings.database_outage_wait_s,
            )
        except RedisError as exc:
            # Raising the fence counter past the recorded fence needs Redis: try again later.
            log.warning(
                "run %s requeued: Redis failed while it took the fence: %s", run.run_id, exc
            )
            charge = None
        except Exception as exc:
            if not db.connection_lost(exc):
                raise
            _gave_up(deps, run, "taking its fence", exc)
            return
        if charge is None:
            await _requeue(deps, run, worker)
            return
        state = _Run(deps, run, token, charge)
        try:
            await state.work()
        except StaleFence as exc:
            log.warning("run %s stopped: %s", run.run_id, exc)
        except asyncio.CancelledError:
            await _finish(state, RunStatus.CANCELLED, "worker shutting down")
            raise
        except Exception as exc:
            if db.connection_lost(exc):
                log.warning(
                    "run %s failed: the database stayed away for longer than "
                    "SQUALL_DATABASE_OUTAGE_WAIT_S (%ss): %s",
                    run.run_id,
                    deps.settings.database_outage_wait_s,
                    outage.describe(exc),
                )
            elif isinstance(exc, ModelError | httpx.HTTPError):
                # The model's failure, not the platform's: one line, no traceback.
                log.warning("run %s failed: %s", run.run_id, str(exc) or type(exc).__name__)
            else:
                log.exception("run %s failed", run.run_id)
            await _finish(state, RunStatus.FAILED, repr(exc))
    finally:
        if state is not None and state.ended is not None:
            deps.ended(state.ended)
        stop.set()
        # A refresh in flight finishes first; one that Redis never answers is left behind
        # (cancelled) after one TTL rather than holding this run, and the lock, for good.
        _, pending = await asyncio.wait({refresher}, timeout=deps.lock.ttl_ms / 1000)
        for task in pending:
            log.warning(
                "run %s stopped waiting for its lock refresh after %d ms",
                run.run_id,
                deps.lock.ttl_ms,
            )
            task.cancel()
        try:
            await deps.lock.release(run.thread_id, token)
        except (RedisError, OSError) as exc:
            # It expires after its TTL; fencing keeps a later holder safe meanwhile.
            log.warning("releasing the lock of thread %s failed: %s", run.thread_id, exc)
        except Exception:
            log.exception("releasing the lock of thread %s failed", run.thread_id)


async def _finish(state: _Run, status: RunStatus, error: str) -> None:
    """:meth:`_Run.finish_unsuccessfully`; a database that stays away meanwhile leaves the
    run to orphan recovery (one warning), a ``StaleFence`` to the holder that fenced it."""
    try:
        await state.finish_unsuccessfully(status, error)
    except StaleFence:
        pass
    except Exception as exc:
        if not db.connection_lost(exc):
            raise
        _gave_up(state.deps, state.run, f"storing its end ({status})", exc)


def _gave_up(deps: AgentDeps, run: ClaimedRun, what: str, exc: BaseException) -> None:
    """Log that ``run`` stopped waiting for the database while ``what``: it stays
    ``running`` in the database, and its lock is released, so orphan recovery (any
    worker's, this one's too) fails and refunds it once the database is back."""
    log.warning(
        "run %s gave up %s: the database stayed away for longer than "
        "SQUALL_DATABASE_OUTAGE_WAIT_S (%ss): %s; orphan recovery fails and refunds it "
        "once the database is back",
        run.run_id,
        what,
        deps.settings.database_outage_wait_s,
        outage.describe(exc),
    )


async def recover(deps: AgentDeps, run: ClaimedRun) -> bool:
    """Fail and refund ``run`` if its worker died (running, but its thread lock expired).

    Taking the lock with a new token fences the dead (or merely stalled) worker out:
    any write it still attempts is rejected. Returns whether this call recovered it.
    """
    if await deps.lock.held(run.thread_id):
        return False
    token = await deps.lock.acquire(run.thread_id)
    if token is None:
        return False
    try:
        charge = await _take_fence(deps, run, token)
        if charge is None:
            return False
        await _Run(deps, run, token, charge).finish_unsuccessfully(
            RunStatus.FAILED, "worker lost: the run lock expired while the run was running"
        )
        return True
    except StaleFence:
        return False
    finally:
        await deps.lock.release(run.thread_id, token)
