"""A server given by URL that does not answer: one sentence per clause, however its client
library ends its own message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from squall.services import ServiceUnavailable
from squall.services.stack import _check_postgres, _check_redis, _reason


def test_the_reason_loses_a_final_period_only() -> None:
    refused = ConnectionError("Error 111 connecting to 127.0.0.1:1. Connect call failed.")
    assert _reason(refused) == "Error 111 connecting to 127.0.0.1:1. Connect call failed"
    assert _reason(OSError("no route")) == "no route"
    assert _reason(TimeoutError()) == "TimeoutError"


def _refusal(check: Callable[[str], Awaitable[None]], url: str) -> str:
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(check(url))
    return str(info.value)


def test_an_unreachable_server_reads_as_sentences() -> None:
    # Nothing listens on port 1: the connection is refused at once. redis-py ends its
    # message with a period, asyncpg does not.
    redis = _refusal(_check_redis, "redis://127.0.0.1:1/0")
    postgres = _refusal(_check_postgres, "postgresql://postgres@127.0.0.1:1/postgres")
    for message, variable in ((redis, "REDIS_URL"), (postgres, "DATABASE_URL")):
        assert ".." not in message
        assert f"). Start it, fix {variable}, or unset {variable}" in message
