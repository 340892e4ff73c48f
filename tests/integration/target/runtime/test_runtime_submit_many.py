"""``squall_submit_many`` (migration 4) against consecutive ``squall_submit`` calls.

Each trial builds a random starting state (accounts with small balances or none, threads
of the user and of another user with queued counts near a small bound), applies a random
batch once through ``squall_submit_many`` and once element by element through
``squall_submit`` on the same state, and compares the outcomes and every row left. Both
run in one transaction rolled back to a savepoint in between, so a trial costs a few
milliseconds and the state is identical by construction.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from squall.target.db import Connection, Pool, connect, create_pool
from squall.target.migrations import migrate
from squall.target.submit_batch import Element
from squall.target.submit_sql import SUBMIT_MANY_SQL, SUBMIT_SQL, Terms, submit_many

pytestmark = pytest.mark.integration

TRIALS = 300
USER = "u"
OTHER = "v"
THREADS = ("a", "b", "c", "d", "e")
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND datname = current_database()"
)


@pytest.fixture
async def pool(fresh_db: str) -> AsyncIterator[Pool]:
    pool = await create_pool(fresh_db, max_size=3)
    await migrate(pool)
    yield pool
    await pool.close()


def _arrays(elements: list[Element]) -> list[list[str]]:
    return [
        [e.thread for e in elements],
        [e.message for e in elements],
        [e.run for e in elements],
        [e.content for e in elements],
        [e.client_msg_id for e in elements],
    ]


async def _rows(conn: Connection) -> dict[str, Any]:
    """Every row a submit writes, without ``pos`` values (sequences are not transactional,
    so only their order counts) and timestamps."""
    return {
        "accounts": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT user_id, balance, initial FROM accounts ORDER BY user_id"
            )
        ],
        "threads": [
            tuple(r)
            for r in await conn.fetch("SELECT id, user_id, queued FROM threads ORDER BY id")
        ],
        "messages": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT id, thread_id, user_id, role, content, run_id, client_msg_id "
                "FROM messages ORDER BY pos"
            )
        ],
        "runs": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT id, thread_id, user_id, message_id, status FROM runs ORDER BY pos"
            )
        ],
        "ledger": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT run_id, user_id, amount, refunded FROM ledger ORDER BY run_id"
            )
        ],
    }


async def _one_by_one(
    conn: Connection, terms: Terms, elements: list[Element]
) -> list[tuple[str, int]]:
    outcomes = []
    for e in elements:
        try:
            async with conn.transaction():  # a savepoint: a refusal rolls back its call only
                left = await conn.fetchval(
                    SUBMIT_SQL,
                    e.thread,
                    USER,
                    e.message,
                    e.run,
                    e.content,
                    e.client_msg_id,
                    terms.cost,
                    terms.initial,
                    terms.max_queued,
                )
        except asyncpg.RaiseError as exc:
            outcomes.append((str(exc.detail), int(exc.hint)))
        else:
            outcomes.append(("ok", int(left)))
    return outcomes


async def _setup(conn: Connection, rng: random.Random) -> None:
    for user in (USER, OTHER):
        if rng.random() < 0.7:
            balance = rng.randint(0, 12)
            await conn.execute(
                "INSERT INTO accounts (user_id, balance, initial) VALUES ($1, $2::bigint, $3)",
                user,
                balance,
                rng.randint(balance, 20),
            )
    for thread in THREADS:
        roll = rng.random()
        if roll < 0.5:
            owner = USER if roll < 0.35 else OTHER
            await conn.execute(
                "INSERT INTO threads (id, user_id, queued) VALUES ($1, $2, $3)",
                thread,
                owner,
                rng.randint(0, 4),
            )


async def test_submit_many_is_consecutive_submits(pool: Pool) -> None:
    rng = random.Random(20240611)
    seen: set[str] = set()
    async with pool.acquire() as conn:
        for trial in range(TRIALS):
            terms = Terms(
                cost=rng.choice((1, 1, 2, 3)),
                initial=rng.randint(0, 10),
                max_queued=rng.choice((0, 1, 2, 3, 3, 4, 6)),
            )
            size = rng.randint(1, 14)
            elements = [
                Element(
                    rng.choice(THREADS[: rng.randint(1, len(THREADS))]),
                    f"m{trial}-{i}",
                    f"r{trial}-{i}",
                    f"content {i}",
                    f"c{i}",
                )
                for i in range(size)
            ]
            tx = conn.transaction()
            await tx.start()
            try:
                await _setup(conn, rng)
                async with conn.transaction():
                    batch = [
                        (r["status"], int(r["number"]))
                        for r in await conn.fetch(
                            SUBMIT_MANY_SQL,
                            USER,
                            *_arrays(elements),
                            terms.cost,
                            terms.initial,
                            terms.max_queued,
                        )
                    ]
                    after_batch = await _rows(conn)
                    raise _Undo
            except _Undo:
                single = await _one_by_one(conn, terms, elements)
                after_single = await _rows(conn)
            finally:
                await tx.rollback()
            context = f"trial {trial}: {terms}, threads {[e.thread for e in elements]}"
            assert batch == single, context
            assert after_batch == after_single, context
            seen.update(status for status, _ in single)
    # The trials reached every outcome, so every branch of both functions was compared.
    assert seen == {"ok", "not_found", "queue_full", "insufficient_credits"}


class _Undo(Exception):
    """Rolls the savepoint of the batch back, so the same state meets the single calls."""


async def test_a_duplicate_id_rolls_the_whole_batch_back(pool: Pool) -> None:
    terms = Terms(cost=1, initial=10, max_queued=5)
    await submit_many(pool, terms, USER, [Element("t", "m1", "r1", "x", "c1")] * 1)
    elements = [Element("t", "m2", "r2", "x", "c2"), Element("t", "m3", "r1", "x", "c3")]
    with pytest.raises(asyncpg.UniqueViolationError):
        await submit_many(pool, terms, USER, elements)
    assert await pool.fetchval("SELECT count(*) FROM runs") == 1
    assert await pool.fetchval("SELECT queued FROM threads WHERE id = 't'") == 1
    assert await pool.fetchval("SELECT balance FROM accounts WHERE user_id = $1", USER) == 9


async def test_arrays_of_different_lengths_are_refused(pool: Pool) -> None:
    with pytest.raises(asyncpg.RaiseError, match="differ in length"):
        await pool.fetch(SUBMIT_MANY_SQL, USER, ["t", "t"], ["m"], ["r"], ["x"], ["c"], 1, 5, 5)
    assert await pool.fetch(SUBMIT_MANY_SQL, USER, [], [], [], [], [], 1, 5, 5) == []


async def test_a_balance_that_falls_before_the_debit_fails_the_whole_batch(
    pool: Pool, fresh_db: str
) -> None:
    """The batch read enough credits, then a concurrent debit took them while the batch
    waited for the account row: it must not charge part of itself, and leaves nothing."""
    terms = Terms(cost=1, initial=3, max_queued=5)
    await submit_many(pool, terms, USER, [Element("t", "m0", "r0", "x", "c0")] * 1)  # balance 2
    rival: Connection = await connect(fresh_db)
    try:
        tx = rival.transaction()
        await tx.start()
        await rival.execute("UPDATE accounts SET balance = balance - 1 WHERE user_id = $1", USER)
        elements = [Element("t", f"m{i}", f"r{i}", "x", f"c{i}") for i in (1, 2)]
        batch = asyncio.ensure_future(submit_many(pool, terms, USER, elements))
        async with asyncio.timeout(10):
            while not await rival.fetchval(WAITING_ON_A_LOCK):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await tx.commit()
        with pytest.raises(asyncpg.RaiseError, match="squall_submit_many") as raised:
            await batch
        assert raised.value.detail == "balance_changed"
    finally:
        await rival.close()
    assert await pool.fetchval("SELECT count(*) FROM runs") == 1
    assert await pool.fetchval("SELECT queued FROM threads WHERE id = 't'") == 1
    assert await pool.fetchval("SELECT balance FROM accounts WHERE user_id = $1", USER) == 1
