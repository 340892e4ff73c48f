"""Messages about the results database that name what happened."""

from __future__ import annotations

from squall.store.location import error_text


def test_an_error_without_a_message_says_what_happened() -> None:
    # asyncpg's connect timeout (a port where no PostgreSQL answers) has no text: the line
    # read "cannot use the results database (--results-db): ; check that it runs ...".
    assert error_text(TimeoutError()) == (
        "no answer within 10 s: is it a PostgreSQL server, and is its port right?"
    )
    assert error_text(ConnectionResetError()) == "ConnectionResetError"
    assert error_text(OSError("refused")) == "refused"
