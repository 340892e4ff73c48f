"""Messages about the results database that name what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from squall.store.location import (
    ResultsDbError,
    Source,
    connection,
    describe,
    error_text,
    missing_default_cluster,
    source_of,
)


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


SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SETTING = "postgresql://postgres@127.0.0.1:5432/results"


BOTH = {"SQUALL_RESULTS_DB": SETTING, "DATABASE_URL": SERVER}
ON_SERVER = "database squall_results on DATABASE_URL's server"


@pytest.mark.parametrize(
    ("explicit", "environ", "source", "url", "described"),
    [
        (SETTING, {**BOTH, "SQUALL_RESULTS_DB": "x"}, Source.SETTING, SETTING, "--results-db"),
        (None, BOTH, Source.SETTING, SETTING, "SQUALL_RESULTS_DB"),
        ("", BOTH, Source.SETTING, SETTING, "SQUALL_RESULTS_DB"),
        (None, {**BOTH, "SQUALL_RESULTS_DB": ""}, Source.SERVER, SERVER, ON_SERVER),
        (None, {"DATABASE_URL": ""}, Source.CLUSTER, None, "embedded cluster in out/.db"),
    ],
)
def test_the_results_database_is_chosen_in_one_order(
    explicit: str | None,
    environ: dict[str, str],
    source: Source,
    url: str | None,
    described: str,
) -> None:
    assert source_of(explicit, environ) == (source, url)
    assert describe(explicit, Path("out"), environ) == described


def test_only_the_default_cluster_not_yet_created_is_missing(tmp_path: Path) -> None:
    assert missing_default_cluster(None, tmp_path, {}) == tmp_path / ".db"
    assert missing_default_cluster("", tmp_path, {}) is None  # checked where it is used
    assert missing_default_cluster(None, tmp_path, {"DATABASE_URL": SERVER}) is None
    assert missing_default_cluster(None, tmp_path, {"SQUALL_RESULTS_DB": SETTING}) is None
    (tmp_path / ".db" / "data").mkdir(parents=True)
    (tmp_path / ".db" / "data" / "PG_VERSION").write_text("17\n")
    assert missing_default_cluster(None, tmp_path, {}) is None
