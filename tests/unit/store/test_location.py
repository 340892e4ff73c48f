"""Messages about the results database that name what happened."""

from __future__ import annotations

import asyncio

import pytest

from squall.store.location import ResultsDbError, connection, error_text


def test_an_error_without_a_message_says_what_happened() -> None:
    # asyncpg's connect timeout (a port where no PostgreSQL answers) has no text: the line
    # read "cannot use the results database (--results-db): ; check that it runs ...".
    assert error_text(TimeoutError()) == (
        "no answer within 10 s: is it a PostgreSQL server, and is its port right?"
    )
    assert error_text(ConnectionResetError()) == "ConnectionResetError"
    assert error_text(OSError("refused")) == "refused"


def test_a_url_option_the_client_refuses_is_a_results_db_error() -> None:
    # asyncpg's ClientConfigurationError escaped squall run's "not stored" warning as a
    # traceback after the whole run, and squall history's message as one too.
    url = "postgresql://postgres:pw@127.0.0.1:1/results?sslmode=bogus"

    async def open_it() -> None:
        async with connection(url):
            pass

    with pytest.raises(ResultsDbError) as info:
        asyncio.run(open_it())
    message = str(info.value)
    assert "'postgresql://postgres:***@127.0.0.1:1/results?sslmode=bogus' has an option" in message
    assert "sslmode" in message
    assert "--results-db" in message
