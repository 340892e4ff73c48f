"""db.retrying: lost connections are waited out, a write that committed is not made twice;
outage.retrying, which it is, waits out Redis the same way for a worker's start."""

from __future__ import annotations

import asyncio
import logging
import re

import asyncpg
import pytest
from redis import exceptions as redis_errors

from squall.services.embedded import free_port
from squall.target import db, outage, redis_pool
from squall.target.settings import Settings

LOST = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")


class Attempts:
    """Fails with each of ``errors`` in turn, then returns how many calls it took."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


@pytest.mark.parametrize(
    "error",
    [
        LOST,
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_a_lost_connection_is_retried_until_the_work_succeeds(error: BaseException) -> None:
    assert db.connection_lost(error)
    attempt = Attempts(error, error)
    assert await db.retrying("work", attempt, within_s=5) == 3


async def test_other_errors_are_raised_at_once() -> None:
    attempt = Attempts(asyncpg.UniqueViolationError("duplicate key"))
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.retrying("work", attempt, within_s=5)
    assert attempt.calls == 1
    assert not db.connection_lost(ValueError("no"))


async def test_a_write_that_committed_before_the_loss_is_not_made_again() -> None:
    attempt = Attempts(LOST)
    asked: list[int] = []

    async def committed() -> int | None:
        asked.append(attempt.calls)
        return 42

    assert await db.retrying("write", attempt, committed=committed, within_s=5) == 42
    assert attempt.calls == 1  # not attempted again
    assert asked == [1]


async def test_a_write_that_did_not_commit_is_made_again() -> None:
    attempt = Attempts(LOST)

    async def committed() -> int | None:
        return None

    assert await db.retrying("write", attempt, committed=committed, within_s=5) == 2


async def test_committed_is_not_asked_before_any_loss() -> None:
    async def committed() -> int | None:
        raise AssertionError("asked without a lost connection")

    assert await db.retrying("write", Attempts(), committed=committed, within_s=5) == 1


async def test_the_last_error_is_raised_when_the_database_stays_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = Attempts(*[LOST] * 100)
    with caplog.at_level(logging.WARNING), pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await db.retrying("run r1 storing agent_thinking", attempt, within_s=0.3)
    assert 2 <= attempt.calls < 100
    # One line per outage, not one per attempt.
    waits = [r.getMessage() for r in caplog.records if "waits for the database" in r.getMessage()]
    assert waits == [
        "run r1 storing agent_thinking waits for the database: ConnectionDoesNotExistError: "
        "connection was closed in the middle of operation"
    ]


def test_asyncpg_pool_floor_warnings_lose_their_traceback_for_a_lost_connection() -> None:
    record = logging.LogRecord(
        "asyncpg.pool", logging.WARNING, __file__, 1, "Failed to restore the pool connection "
        "floor; retrying", None, (type(LOST), LOST, None)
    )  # fmt: skip
    assert db._ONE_LINE.filter(record)
    assert record.exc_info is None
    assert record.getMessage() == (
        "Failed to restore the pool connection floor; retrying: ConnectionDoesNotExistError: "
        "connection was closed in the middle of operation"
    )
    other = ValueError("a bug")
    kept = logging.LogRecord(
        "asyncpg.pool", logging.WARNING, __file__, 1, "x", None, (ValueError, other, None)
    )
    assert db._ONE_LINE.filter(kept)
    assert kept.exc_info is not None


async def test_redis_unreachable_is_waited_out_and_other_redis_errors_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6390.")
    attempt = Attempts(refused, redis_errors.TimeoutError("Timeout reading from socket"))
    with caplog.at_level(logging.WARNING):
        assert (
            await outage.retrying(
                "worker start",
                attempt,
                server="Redis",
                lost=redis_pool.connection_lost,
                within_s=5,
            )
            == 3
        )
    assert [r.getMessage() for r in caplog.records] == [
        "worker start waits for Redis: ConnectionError: Error 111 connecting to 127.0.0.1:6390.",
        "worker start: Redis is back",
    ]
    script_error = Attempts(redis_errors.ResponseError("NOSCRIPT No matching script"))
    with pytest.raises(redis_errors.ResponseError):
        await outage.retrying(
            "work", script_error, server="Redis", lost=redis_pool.connection_lost, within_s=5
        )
    assert script_error.calls == 1


async def test_a_worker_start_not_waiting_for_redis_fails_at_once_naming_it() -> None:
    port = free_port()
    client = redis_pool.connect(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        with pytest.raises(redis_errors.ConnectionError, match=re.escape(f"127.0.0.1:{port}")):
            await redis_pool.wait_reachable(client, "worker start", within_s=0)
    finally:
        await client.aclose()


def test_a_full_postgresql_is_told_apart_from_an_unreachable_one() -> None:
    from squall.target.errors import unavailable

    full = unavailable(asyncpg.TooManyConnectionsError("sorry, too many clients already"))
    assert full is not None
    assert full.code == "unavailable"
    assert str(full).startswith("PostgreSQL has no free connection (TooManyConnectionsError: ")
    lost = unavailable(LOST)
    assert lost is not None
    assert str(lost).startswith("PostgreSQL is unreachable (")
    assert unavailable(ValueError("no")) is None


class Outage:
    """A server that is down until :meth:`restore`: every attempt fails with ``LOST``."""

    def __init__(self) -> None:
        self.down = True

    def restore(self) -> None:
        self.down = False

    async def __call__(self) -> str:
        if self.down:
            raise LOST
        return "done"


async def test_an_outage_many_tasks_wait_out_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Outage()
    with caplog.at_level(logging.WARNING, logger="squall.target.outage"):
        waiters = [
            asyncio.create_task(db.retrying(f"socket {i} replaying thread t", server, within_s=5))
            for i in range(5)
        ]
        loser = asyncio.create_task(db.retrying("a short wait", server, within_s=0.2))
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            await loser
        assert outage.OUTAGES.waiting("the database") == 5
        server.restore()
        assert await asyncio.gather(*waiters) == ["done"] * 5
    assert outage.OUTAGES.waiting("the database") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("socket 0 replaying thread t waits for the database: ")
    # Six waited; the one that gave up early is counted too (it was part of the outage).
    assert re.fullmatch(
        r"socket \d replaying thread t: the database is back; 6 tasks here waited for it",
        messages[1],
    )


async def test_a_later_outage_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="squall.target.outage"):
        for _ in range(2):
            assert await db.retrying("work", Attempts(LOST), within_s=5) == 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "work waits for the database",
        "work",
        "work waits for the database",
        "work",
    ]
