"""What a killed squall left is swept on the next start: the folders of embedded servers
under the temporary folder, and the databases it created on a given server."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from squall.services import (
    Endpoints,
    create_database,
    drop_database,
    services,
    with_database,
)
from squall.services.embedded import free_port, port_open, valkey_binary
from squall.services.leftovers import OWNER_FILE, Owner

pytestmark = pytest.mark.integration


def _folder(parent: Path, name: str, owner: Owner | None) -> Path:
    folder = parent / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "PG_VERSION").write_text("17\n")
    if owner is not None:
        (folder / OWNER_FILE).write_text(owner.to_json())
    return folder


def test_an_embedded_start_removes_the_folders_whose_owner_is_gone(
    tmpdir_of_run: Path, gone_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    stale_pg = _folder(tmpdir_of_run, "squall-pg-stale", gone_owner)
    stale_valkey = _folder(tmpdir_of_run, "squall-valkey-stale", gone_owner)
    kept = {
        _folder(tmpdir_of_run, "squall-pg-live", Owner.current()),
        _folder(tmpdir_of_run, "squall-valkey-bare", None),
        _folder(tmpdir_of_run, "squall-pg-far", dataclasses.replace(gone_owner, host="elsewhere")),
    }
    # A server its owner's death did not stop, still running in the stale folder.
    port = free_port()
    argv = [str(valkey_binary()), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(stale_valkey)]
    stray = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_open("127.0.0.1", port)
        with services(environ={}) as ep:
            assert ep.postgres is not None
            assert ep.valkey is not None
            ours = {ep.postgres.workdir, ep.valkey.workdir}
            assert set(tmpdir_of_run.iterdir()) == kept | ours
            for workdir in ours:
                assert Owner.from_json((workdir / OWNER_FILE).read_text()) == Owner.current()
        assert stray.wait(5) is not None
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait(30)
    assert set(tmpdir_of_run.iterdir()) == kept
    err = capsys.readouterr().err
    assert f"squall: removed {stale_pg}: left by process {gone_owner.pid} on " in err
    assert f"squall: stopping valkey-server (process {stray.pid}) left running in " in err
    assert f"squall: removed {stale_valkey}: left by process {gone_owner.pid} on " in err


async def _sql(url: str, *statements: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements[:-1]:
            await conn.execute(statement)
        return list(await conn.fetch(statements[-1]))
    finally:
        await conn.close()


def test_create_database_drops_the_databases_whose_owner_is_gone(
    endpoints: Endpoints, gone_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    server = endpoints.database_url
    owners = {
        "stale": gone_owner,
        "live": Owner.current(),
        "far": dataclasses.replace(gone_owner, host="elsewhere"),
        "bare": None,
    }
    names = {what: f"squall_platform_{secrets.token_hex(4)}" for what in owners}
    creates = [f'CREATE DATABASE "{names[what]}"' for what in owners]
    comments = [
        f"COMMENT ON DATABASE \"{names[what]}\" IS '{owner.to_json()}'"
        for what, owner in owners.items()
        if owner is not None
    ]
    created = ""
    try:
        asyncio.run(_sql(server, *creates, *comments, "SELECT 1"))
        created = urlsplit(create_database(server, prefix="squall_platform")).path.lstrip("/")
        rows = asyncio.run(
            _sql(
                server,
                "SELECT datname, shobj_description(oid, 'pg_database') AS comment "
                "FROM pg_database WHERE datname LIKE 'squall\\_platform\\_%'",
            )
        )
        found = {row["datname"]: row["comment"] for row in rows}
        assert names["stale"] not in found
        assert {names["live"], names["far"], names["bare"]} <= set(found)
        assert Owner.from_json(found[created]) == Owner.current()
        err = capsys.readouterr().err
        assert f"squall: dropped database {names['stale']} on " in err
        assert f": left by process {gone_owner.pid} on " in err
    finally:
        for name in [*names.values(), created]:
            if name:
                drop_database(server, with_database(server, name))
