"""A statement a killed process had sent still commits: the worker parts read what the
killed worker left running only once PostgreSQL has no backend serving it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
import pytest

from squall.scenarios.platform_races import _tcp_ports, backends_gone

pytestmark = pytest.mark.integration

#: A client that claims a row slowly, as a worker's claim on a loaded database.
CLAIMING = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.execute("INSERT INTO claims SELECT 1 FROM pg_sleep(5)")
asyncio.run(main())
"""


async def test_a_claim_in_flight_when_its_client_is_killed_is_read_after_it_commits(
    fresh_db: str,
) -> None:
    # The run a worker was claiming at its kill was read as not running, so it was not
    # among the runs lost with it, and the runs checker raised a false alarm on it.
    url = fresh_db
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE claims (x int)")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CLAIMING, url)
    try:
        async with asyncio.timeout(30):
            while not await conn.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO claims%'"
            ):
                await asyncio.sleep(0.05)
        ports = _tcp_ports(child.pid)
        assert ports
        os.kill(child.pid, signal.SIGKILL)
        assert await conn.fetchval("SELECT count(*) FROM claims") == 0  # still sleeping
        assert await backends_gone(conn, ports, within_s=30.0)
        assert await conn.fetchval("SELECT count(*) FROM claims") == 1
    finally:
        if child.returncode is None:
            child.kill()
        await asyncio.wait_for(child.wait(), 10)
        await conn.close()
