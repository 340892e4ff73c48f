"""``create_database`` on a server whose role may not create databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from squall.services import Endpoints, ServiceUnavailable, create_database, drop_database

pytestmark = pytest.mark.integration

ROLE = "squall_test_no_createdb"


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def role_url(endpoints: Endpoints) -> Iterator[str]:
    """The session's server, as a login role without CREATEDB (trust authentication)."""
    admin = endpoints.database_url
    asyncio.run(
        _sql(
            admin,
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') "
            f"THEN CREATE ROLE {ROLE} LOGIN NOCREATEDB; END IF; END $$",
        )
    )
    parts = urlsplit(admin)
    netloc = f"{ROLE}@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    finally:
        asyncio.run(_sql(admin, f"DROP ROLE IF EXISTS {ROLE}"))


def test_a_refused_create_names_the_server_and_the_fix(role_url: str) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        create_database(role_url, prefix="squall_refused")
    message = str(info.value)
    assert f"cannot create a database on {role_url}: permission denied" in message
    assert "grant the role CREATEDB, or unset DATABASE_URL" in message


def test_a_permitted_create_returns_the_new_database(endpoints: Endpoints) -> None:
    url = create_database(endpoints.database_url, prefix="squall_permitted")
    try:
        assert urlsplit(url).path.startswith("/squall_permitted_")
        asyncio.run(_sql(url, "SELECT 1"))
    finally:
        drop_database(endpoints.database_url, url)
