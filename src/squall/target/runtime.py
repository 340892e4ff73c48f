"""The runtime facade the platform's edge calls: submit, replay, accounts, shutdown.

One ``Runtime`` per worker process. It owns its PostgreSQL pool, its Redis client, the
run scheduler and the tasks of the runs it executes; everything shared between workers
lives in PostgreSQL (runs, ledger, events) and Redis (locks, fencing counters, wake-ups).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from squall.target import billing, db, events, outage, redis_pool
from squall.target.agent import AgentDeps, Publish, execute, recover, requeue
from squall.target.db import Connection, create_pool, pool_size
from squall.target.errors import (
    ContentTooLarge,
    InvalidField,
    NotFound,
    QueueFull,
    ShuttingDown,
    TargetError,
)
from squall.target.ids import (
    MessageID,
    RunID,
    ThreadID,
    UserID,
    new_message_id,
    new_run_id,
)
from squall.target.locks import RunLock
from squall.target.migrations import migrate
from squall.target.model import Sleeper, create_model
from squall.target.runs import ClaimedRun, RunStatus
from squall.target.scheduler import Scheduler, orphans, queued_count, running_on
from squall.target.settings import Settings
from squall.target.submit_batch import OK, Element, Outcome
from squall.target.submit_sql import SUBMIT_SQL, Terms, billing_batcher

__all__ = ["SUBMIT_SQL", "Publish", "Runtime", "Submitted"]

log = logging.getLogger(__name__)

THREAD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CLIENT_MSG_ID = 128
#: Counters of this worker that ``stats()`` reports.
COUNTERS = (
    "runs_submitted_total",
    "runs_claimed_total",
    "runs_completed_total",
    "runs_failed_total",
    "runs_cancelled_total",
    "runs_recovered_total",
    "submit_statements_total",
    "submit_batches_total",
    "submit_batched_total",
    "submit_batch_fallbacks_total",
)


@dataclass(frozen=True)
class Submitted:
    message_id: MessageID
    run_id: RunID
    thread_id: ThreadID


def _validate_thread(thread: object) -> ThreadID:
    if not isinstance(thread, str) or not THREAD_ID.fullmatch(thread):
        raise InvalidField(f"thread_id={thread!r}: expected 1-64 characters of [A-Za-z0-9_.:-]")
    return ThreadID(thread)


class Runtime:
    """Runs, billing and events of one worker; see ``docs/runtime.md``."""

    def __init__(
        self,
        settings: Settings,
        publish: Publish,
        pool: Any,
        redis: Any,
        sleeper: Sleeper,
        poll_s: float,
    ) -> None:
        self.settings = settings
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._pool = pool
        self._redis = redis
        self._closing = False
        self._claiming = True
        self._runs: dict[RunID, asyncio.Task[None]] = {}
        self._counts: Counter[str] = Counter()
        terms = Terms(settings.run_cost, settings.initial_credits, settings.max_queued_per_thread)

        self._batcher = billing_batcher(pool, terms, after=self._submitted, counts=self._counts)
        self._deps = AgentDeps(
            pool=pool,
            lock=RunLock(redis, settings.redis_prefix, settings.lock_ttl_ms),
            settings=settings,
            model=create_model(settings, sleeper),
            publish=publish,
            system_state=self._system_state,
            ended=self._ended,
        )
        self._scheduler = Scheduler(
            pool=pool,
            redis=redis,
            listener=redis_pool.connect_pubsub(settings, "scheduler"),
            channel=f"{settings.redis_prefix}:runs:wakeup",
            worker=self.worker,
            free_slots=lambda: settings.run_concurrency - len(self._runs) if self._claiming else 0,
            start_run=self._start_run,
            recover=self._recover,
            poll_s=poll_s,
            recover_every_s=max(poll_s, settings.lock_ttl_ms / 2000),
        )

    def __repr__(self) -> str:
        return (
            f"Runtime(worker={self.worker!r}, running={len(self._runs)}, "
            f"closing={self._closing}, counts={dict(self._counts)})"
        )

    @classmethod
    async def start(
        cls,
        settings: Settings,
        publish: Publish,
        *,
        sleeper: Sleeper = asyncio.sleep,
        claim_runs: bool = True,
        poll_s: float = 0.5,
    ) -> Runtime:
        """Connect, migrate (idempotent, safe when all workers start at once), start claiming.

        A database that is unreachable is waited for, as a run waits for it
        (``SQUALL_DATABASE_OUTAGE_WAIT_S``): a worker started in place of a dead one while
        PostgreSQL is down serves once it is back instead of dying at once.
        ``sleeper`` paces the simulated model (tests pass a fast or gated one);
        ``claim_runs=False`` makes a worker that accepts submits but executes nothing.
        """
        wait_s = settings.database_outage_wait_s
        pool = await db.retrying(
            "worker start",
            functools.partial(
                create_pool,
                settings.database_url,
                max_size=settings.db_pool_size or pool_size(settings.run_concurrency),
            ),
            within_s=wait_s,
        )
        redis = redis_pool.connect(settings)
        runtime: Runtime | None = None
        try:
            await db.retrying("worker start: migrations", functools.partial(migrate, pool),
                              within_s=wait_s)  # fmt: skip
            await redis.ping()
            runtime = cls(settings, publish, pool, redis, sleeper, poll_s)
            if claim_runs:
                await runtime._scheduler.start()
        except BaseException:
            if runtime is not None:
                await runtime._scheduler.stop()
            await redis.aclose()
            await pool.close()
            raise
        return runtime

    # ---- submit -----------------------------------------------------------------------

    async def submit(
        self, user: UserID, thread: ThreadID, content: str, client_msg_id: str
    ) -> Submitted:
        """Charge, store the message, its run and its ledger row in one transaction; queue it.

        One statement, taking the hot account row's lock only for its last writes: the
        ``squall_submit`` function (migration 3), or ``squall_submit_many`` (migration 4)
        for the submits of this user that arrived while a statement of theirs was in
        flight (group commit, ``submit_batch``). Cancelled while waiting for its
        statement: nothing is sent; once sent, the outcome stands.
        """
        if self._closing:
            raise ShuttingDown("this worker is shutting down; reconnect and resend the message")
        thread = _validate_thread(thread)
        if not isinstance(content, str):
            raise InvalidField(f"content={content!r}: expected a string")
        if len(content) > self.settings.max_content_chars:
            raise ContentTooLarge(
                f"content has {len(content)} characters; at most "
                f"{self.settings.max_content_chars} are accepted, send a shorter message"
            )
        if not isinstance(client_msg_id, str) or len(client_msg_id) > MAX_CLIENT_MSG_ID:
            raise InvalidField(
                f"client_msg_id={client_msg_id!r}: expected a string of at most "
                f"{MAX_CLIENT_MSG_ID} characters"
            )
        run, message = new_run_id(), new_message_id()
        if self.settings.fault("naive_billing"):
            await self._submit_naive(user, thread, content, client_msg_id, run, message)
            await self._submitted(1)
        else:
            # The run and message ids are chosen here, so whether a submit whose connection
            # was lost had committed is known: its run exists. A lost connection is waited
            # out briefly; the socket gets ``unavailable`` after that.
            element = Element(thread, message, run, content, client_msg_id)
            outcome = await db.retrying(
                f"submit of run {run}",
                functools.partial(self._batcher.submit, user, element),
                committed=functools.partial(self._stored_submit, run),
                within_s=self.settings.submit_outage_wait_s,
            )
            if outcome.status != OK:
                raise self._refusal(outcome, user, thread)
        return Submitted(message_id=message, run_id=run, thread_id=thread)

    async def _stored_submit(self, run: RunID) -> Outcome | None:
        """An ``ok`` outcome if the submit of ``run`` committed (its run exists), else None."""
        stored = await self._pool.fetchval("SELECT 1 FROM runs WHERE id = $1", run)
        return None if stored is None else Outcome(OK, 0)  # the balance left is not known

    async def _submitted(self, accepted: int) -> None:
        """After each billing statement, in the task that sent it (so a caller that went
        away meanwhile is still counted): count the accepted runs and wake the schedulers."""
        self._counts["runs_submitted_total"] += accepted
        if accepted:
            await self._scheduler.notify()

    def _refusal(self, outcome: Outcome, user: UserID, thread: ThreadID) -> TargetError:
        """The error a refusal stands for: ``squall_submit``'s DETAIL names it, its HINT
        (the outcome's number) carries the number the message reports."""
        if outcome.status == "not_found":
            return _not_found(thread)
        if outcome.status == "queue_full":
            return self._queue_full(thread, outcome.number)
        return billing.insufficient(user, outcome.number, self.settings.run_cost)

    def _queue_full(self, thread: ThreadID, queued: int) -> QueueFull:
        return QueueFull(
            f"thread {thread!r} already has {queued} queued runs (the limit is "
            f"{self.settings.max_queued_per_thread}); wait for agent_completed"
        )

    async def _submit_naive(
        self,
        user: UserID,
        thread: ThreadID,
        content: str,
        client_msg_id: str,
        run: RunID,
        message: MessageID,
    ) -> None:
        """The ``naive_billing`` defect's submit: statement by statement, read-modify-write
        debit (see ``billing.charge``)."""
        async with self._pool.acquire() as conn:
            await billing.ensure_account(conn, user, self.settings.initial_credits)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO threads (id, user_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    thread,
                    user,
                )
                row = await conn.fetchrow(
                    "SELECT user_id, queued FROM threads WHERE id = $1 FOR NO KEY UPDATE", thread
                )
                if row["user_id"] != user:
                    raise _not_found(thread)
                if row["queued"] >= self.settings.max_queued_per_thread:
                    raise self._queue_full(thread, row["queued"])
                await conn.execute("UPDATE threads SET queued = queued + 1 WHERE id = $1", thread)
                await billing.charge(conn, user, run, self.settings.run_cost, naive=True)
                await conn.execute(
                    "INSERT INTO messages (id, thread_id, user_id, role, content, run_id, "
                    "client_msg_id) VALUES ($1, $2, $3, 'user', $4, $5, $6)",
                    message,
                    thread,
                    user,
                    content,
                    run,
                    client_msg_id,
                )
                await conn.execute(
                    "INSERT INTO runs (id, thread_id, user_id, message_id) VALUES ($1, $2, $3, $4)",
                    run,
                    thread,
                    user,
                    message,
                )

    # ---- reads ------------------------------------------------------------------------

    async def _check_owner(self, conn: Connection, user: UserID, thread: ThreadID) -> None:
        owner = await conn.fetchval("SELECT user_id FROM threads WHERE id = $1", thread)
        if owner is None or owner != user:
            raise _not_found(thread)

    async def replay(
        self, user: UserID, thread: ThreadID, after_seq: int, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored events with ``seq > after_seq``, ascending: exactly the published dicts."""
        thread = _validate_thread(thread)
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise InvalidField(f"after_seq={after_seq!r}: expected an integer >= 0")
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise InvalidField(f"limit={limit!r}: expected a positive integer or none")
        async with self._pool.acquire() as conn:
            await self._check_owner(conn, user, thread)
            return await events.read_after(conn, thread, after_seq, limit)

    async def runs_active_since(
        self, users: Sequence[UserID], since: float
    ) -> dict[UserID, list[tuple[ThreadID, str]]]:
        """Per user of ``users`` and thread of theirs, the first run that was executing at
        some time from ``since`` (Unix time) on, as (thread, run) in thread order: whose
        events a socket may have missed while pub/sub was down. One query for all of them:
        after a pub/sub outage every local user asks at once."""
        found: dict[UserID, list[tuple[ThreadID, str]]] = {user: [] for user in users}
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (thread_id) user_id, thread_id, id FROM runs "
            "WHERE user_id = ANY($1::text[]) AND started_at IS NOT NULL "
            "AND (finished_at IS NULL OR finished_at >= to_timestamp($2)) "
            "ORDER BY thread_id, started_at",
            list(found),
            since,
        )
        for r in rows:
            found[UserID(r["user_id"])].append((ThreadID(r["thread_id"]), str(r["id"])))
        return found

    async def first_seq_of_run(self, user: UserID, thread: ThreadID, run: str) -> int | None:
        """The seq of ``run``'s first stored event in ``thread``, or None before it has one."""
        thread = _validate_thread(thread)
        async with self._pool.acquire() as conn:
            await self._check_owner(conn, user, thread)
            first = await conn.fetchval(
                "SELECT min(seq) FROM events WHERE thread_id = $1 AND run_id = $2", thread, run
            )
        return None if first is None else int(first)

    async def messages(self, user: UserID, thread: ThreadID) -> list[dict[str, Any]]:
        """The thread's messages in order, user's and assistant's."""
        thread = _validate_thread(thread)
        async with self._pool.acquire() as conn:
            await self._check_owner(conn, user, thread)
            rows = await conn.fetch(
                "SELECT id, role, content, run_id, client_msg_id, "
                "extract(epoch FROM created_at) AS created_at "
                "FROM messages WHERE thread_id = $1 ORDER BY pos",
                thread,
            )
        return [
            {
                "message_id": r["id"],
                "thread_id": thread,
                "role": r["role"],
                "content": r["content"],
                "run_id": r["run_id"],
                "client_msg_id": r["client_msg_id"],
                "created_at": float(r["created_at"]),
            }
            for r in rows
        ]

    # ---- accounts ---------------------------------------------------------------------

    async def account(self, user: UserID) -> dict[str, Any]:
        """The user's account, created with the initial credits on first contact."""
        async with self._pool.acquire() as conn:
            await billing.ensure_account(conn, user, self.settings.initial_credits)
            return await billing.account(conn, user)

    async def add_credits(self, user: UserID, amount: int, granted_by: UserID) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidField(f"amount={amount!r}: expected an integer > 0")
        async with self._pool.acquire() as conn:
            await billing.ensure_account(conn, user, self.settings.initial_credits)
            try:
                async with conn.transaction():
                    await billing.grant(conn, user, amount, granted_by)
            except (asyncpg.NumericValueOutOfRangeError, billing.BalanceOverflow):
                raise InvalidField(
                    f"amount={amount}: the account's balance, with the charges of its runs "
                    "not ended given back, would exceed the largest one it can hold; grant less"
                ) from None
            return await billing.account(conn, user)

    async def set_preferences(self, user: UserID, preferences: dict[str, Any]) -> None:
        """Store the preferences the agent puts in its context (a JSON object). Their size
        is bounded where they arrive, as the HTTP body's bytes (``http.put_preferences``):
        measured again here, re-encoded, the same object can be longer (``1e5`` is written
        ``100000.0``) and a body within the limit was refused."""
        if not isinstance(preferences, dict):
            raise InvalidField(f"preferences={preferences!r:.80}: expected a JSON object")
        await self._pool.execute(
            "INSERT INTO preferences (user_id, preferences) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET preferences = $2, updated_at = now()",
            user,
            preferences,
        )

    # ---- runs -------------------------------------------------------------------------

    def _system_state(self) -> str:
        return (
            f"worker={self.worker} runs_running={len(self._runs)} "
            f"runs_completed={self._counts['runs_completed_total']}"
        )

    def _start_run(self, run: ClaimedRun) -> None:
        if not self._claiming:  # claimed by a claim the drain began during: not started here
            self._runs[run.run_id] = asyncio.create_task(
                self._give_back(run), name=f"give-back-{run.run_id}"
            )
            return
        self._counts["runs_claimed_total"] += 1
        self._runs[run.run_id] = asyncio.create_task(self._run(run), name=f"run-{run.run_id}")

    async def _give_back(self, run: ClaimedRun) -> None:
        """Requeue a run claimed after :meth:`stop_claiming` (by a claim already under way)
        and wake the other workers for it: it has not begun, and this worker is stopping."""
        try:
            if await requeue(self._pool, run, self.worker):
                log.info("run %s, claimed as this worker began to stop, went back", run.run_id)
                await self._scheduler.notify()
        except Exception as exc:
            if not db.connection_lost(exc):
                raise
            # Left `running` here: the shutdown's give-back, or orphan recovery, has it.
            log.warning("giving back run %s failed: %s", run.run_id, outage.describe(exc))
        finally:
            self._runs.pop(run.run_id, None)

    def _ended(self, status: RunStatus) -> None:
        self._counts[f"runs_{status}_total"] += 1

    async def _run(self, run: ClaimedRun) -> None:
        try:
            await execute(self._deps, run, self.worker)
        except Exception:
            log.exception("run %s crashed", run.run_id)
        finally:
            self._runs.pop(run.run_id, None)
            if not self._closing:
                await self._scheduler.notify()

    async def _recover(self) -> None:
        for run in await orphans(self._pool, self.settings.lock_ttl_ms / 1000):
            # Not the runs this worker executes (their lock may lapse while Redis is away).
            if run.run_id in self._runs:
                continue
            try:
                recovered = await recover(self._deps, run)
            except (RedisError, OSError):
                raise  # an outage: the scheduler's poll tries the whole pass again
            except Exception as exc:
                if db.connection_lost(exc):
                    raise
                # One run that cannot be recovered must not hold up the others: the orphans
                # come oldest first, so every pass on every worker stopped at it, for good.
                log.exception(
                    "recovering orphaned run %s of thread %s failed; the next pass tries it again",
                    run.run_id,
                    run.thread_id,
                )
                continue
            if recovered:
                self._counts["runs_recovered_total"] += 1
                log.warning("recovered orphaned run %s of thread %s", run.run_id, run.thread_id)

    async def stats(self) -> dict[str, float]:
        """Gauges and counters for ``/metrics``: this worker's unless named ``*_queued``;
        ``database_up`` 0 (and no ``runs_queued``) while PostgreSQL cannot be reached."""
        out: dict[str, float] = {
            "runs_running": float(len(self._runs)),
            "run_slots": float(self.settings.run_concurrency),
        }
        try:
            out["runs_queued"] = float(await queued_count(self._pool))
            out["database_up"] = 1.0
        except Exception as exc:
            if not db.connection_lost(exc):
                raise
            # Metrics matter most while the database is away: report that, not a wrong 0.
            out["database_up"] = 0.0
        for name in COUNTERS:
            out[name] = float(self._counts[name])
        return out

    def stop_claiming(self) -> None:
        """Claim no more runs; the running ones go on and submits are still taken. The
        first step of a shutdown (``Edge.drain``, while the sockets close): the runs queued
        meanwhile go to the other workers, or to the next start, not to a worker about to
        stop, where they would have only the shutdown's grace to finish in. The runs of a
        claim already under way go back to the queue as it returns them (:meth:`_give_back`)."""
        self._claiming = False

    async def close(self, grace_s: float) -> None:
        """Stop claiming, let running runs finish for ``grace_s``, cancel and refund the rest.

        A cancelled run records ``agent_completed status=cancelled`` and its refund in one
        transaction before the pool closes, so no ledger row is left half-written. Queued
        runs stay queued (and charged) for the other workers or the next start.
        """
        if self._closing:
            return
        self._closing = True
        self.stop_claiming()
        claim_cut_short = await self._scheduler.stop()
        pending: set[asyncio.Task[None]] = set()
        tasks = list(self._runs.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace_s))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if pending or claim_cut_short:
            await self._give_back_unstarted()
        with contextlib.suppress(Exception):
            await self._deps.model.aclose()
        await self._batcher.drain()  # submits already waiting get their statements
        await self._redis.aclose()
        await self._pool.close()

    async def _give_back_unstarted(self) -> None:
        """Requeue the runs cancelled before they began (waiting for their thread lock or
        fence, or not yet scheduled) and those a claim stopped midway had taken but not
        started: they did nothing visible, so the next worker runs them instead of orphan
        recovery failing them a lock TTL later."""
        try:
            given_back = 0
            for run in await running_on(self._pool, self.worker):
                given_back += await requeue(self._pool, run, self.worker)
        except Exception as exc:
            if not db.connection_lost(exc):
                raise
            log.warning("requeueing the runs that had not begun failed: %s", exc)
            return
        if given_back:
            log.info("%d claimed run(s) that had not begun went back to the queue", given_back)


def _not_found(thread: ThreadID) -> NotFound:
    return NotFound(
        f"thread {thread!r} not found among yours; a user_message to an id no thread has yet "
        "creates one"
    )
