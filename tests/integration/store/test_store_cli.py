"""Real ``squall run`` runs stored, listed and compared through the CLI."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from squall.cli import main
from squall.services.persistent import persistent_postgres
from squall.store.migrations import NEWEST_VERSION, migrate

pytestmark = pytest.mark.integration


def test_two_real_runs_are_stored_and_compared(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--results-dir", str(tmp_path), "--results-db", fresh_db, "--no-progress"]
    races = ["-s", "db_race", "-s", "redis_locks", "--scale", "0.5"]
    # A run id as baseline is looked up before the run: none is stored yet.
    assert main(["run", *races, *common, "--baseline", "20261126-101010-abcd"]) == 2
    assert "the results database holds no run yet" in capsys.readouterr().err
    assert main(["run", *races, *common]) == 0
    # A prefix of the one stored run's id (its date), resolved before the run: afterwards
    # it would match the new run as well.
    (first,) = (p.name for p in tmp_path.iterdir() if p.is_dir())
    assert main(["run", *races, *common, "--baseline", first[:8]]) == 0
    out = capsys.readouterr().out
    assert "no regression against" in out
    assert "set up differently" not in out
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert {"report.json", "report.html", "junit.xml", "metrics.txt"} <= {
            p.name for p in run.iterdir()
        }
    assert main(["history", "--results-db", fresh_db]) == 0
    out = capsys.readouterr().out
    assert "passed" in out
    assert main(["compare", "--results-db", fresh_db]) == 0
    out = capsys.readouterr().out
    assert "violations" in out
    # A race's operations have a count but no rate: nothing to compare per second.
    assert [line for line in out.splitlines() if "operations" in line and "count" in line]
    assert not [line for line in out.splitlines() if "operations" in line and "per_second" in line]
    assert main(["compare", runs[0].name, runs[1].name, "--results-db", fresh_db]) == 0
    assert main(["compare", "nope", "last", "--results-db", fresh_db]) == 2
    assert main(["compare", "last", "last", "--results-db", fresh_db]) == 2
    assert "both name run" in capsys.readouterr().err
    # A baseline run at another scale: compared, with a warning that says so.
    assert main(["compare", runs[0].name, runs[1].name, "--results-db", fresh_db]) == 0
    assert "set up differently" not in capsys.readouterr().out
    smaller = [*races[:-1], "0.25"]
    assert main(["run", *smaller, *common, "--baseline", "last"]) in (0, 1)
    out = capsys.readouterr().out
    assert "! the runs were set up differently (scale: 0.5 → 0.25)" in out
    shutil.rmtree(sorted(p for p in tmp_path.iterdir() if p.is_dir())[-1])
    # A scenario's own parameter set otherwise is named too.
    fewer = ["--set", "scenarios.db_race.writers=4"]
    assert main(["run", *races, *common, *fewer, "--baseline", "last"]) in (0, 1)
    out = " ".join(capsys.readouterr().out.split())
    assert "db_race.writers: default → 4): their figures may not be comparable" in out
    shutil.rmtree(sorted(p for p in tmp_path.iterdir() if p.is_dir())[-1])
    assert main(["run", *races, *common, "--tolerance", "lots"]) == 2
    assert main(["run", *races, *common, "--baseline", ""]) == 2
    assert "--baseline is empty" in capsys.readouterr().err
    assert main(["run", *races, *common, "--baseline", "nope"]) == 2
    assert "--baseline nope: no stored run matches 'nope'" in capsys.readouterr().err
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # refused before running


def test_history_and_compare_read_the_database_squall_run_used_from_the_config(
    fresh_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # squall run finds squall.toml in the folder it runs from; history and compare run from
    # that folder read the same database (they read the default one, without the file).
    (tmp_path / "squall.toml").write_text(
        f'[run]\nresults_dir = "out"\n\n[results]\ndatabase_url = "{fresh_db}"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQUALL_RESULTS_DB", raising=False)
    races = ["-s", "db_race", "--scale", "0.25", "--no-progress"]
    assert main(["run", *races]) == 0
    assert main(["run", *races]) == 0
    # In the order they ran: two runs started in the same second differ only in the random
    # end of their ids.
    folders = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    started = {p.name: json.loads((p / "report.json").read_text())["started_at"] for p in folders}
    runs = sorted(started, key=started.__getitem__)
    assert len(runs) == 2
    capsys.readouterr()
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert all(run[:15] in out for run in runs)
    assert main(["compare"]) == 0
    assert f"no regression against {runs[0]}" in capsys.readouterr().out
    # --config names the file from elsewhere; an option still wins over it.
    monkeypatch.chdir(tmp_path / "out")
    assert main(["compare", runs[0], runs[1], "--config", str(tmp_path / "squall.toml")]) == 0
    assert main(["history", "--config", "../squall.toml", "--results-db", "off"]) == 2
    assert "--results-db is 'off'" in capsys.readouterr().err


def test_persistent_cluster_keeps_data_between_starts() -> None:
    # Not under tmp_path: pytest keeps its base folder private (0700), and the
    # cluster runs as a separate account when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="squall-persistent-test-"))
    datadir = root / ".db" / "data"

    async def write(url: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()

    async def read(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT n FROM kept"))
        finally:
            await conn.close()

    try:
        with persistent_postgres(datadir) as url:
            asyncio.run(write(url))
        with persistent_postgres(datadir) as url:
            assert asyncio.run(read(url)) == 42
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_reading_a_database_squall_never_used_creates_nothing_in_it(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--results-db", fresh_db]) == 0
    assert "no runs stored yet" in capsys.readouterr().out
    assert main(["compare", "--results-db", fresh_db]) == 2
    assert "the results database holds no run yet" in capsys.readouterr().err

    async def tables() -> int:
        conn = await asyncpg.connect(fresh_db)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
        finally:
            await conn.close()

    assert asyncio.run(tables()) == 0


def test_history_and_compare_refuse_a_database_a_newer_squall_wrote(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def mark_newer() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            await migrate(conn)
            await conn.execute(
                "INSERT INTO squall_schema_migrations (version, name) VALUES ($1, 'newer')",
                NEWEST_VERSION + 1,
            )
        finally:
            await conn.close()

    asyncio.run(mark_newer())
    for command in ("history", "compare"):
        assert main([command, "--results-db", fresh_db]) == 3
        out = " ".join(capsys.readouterr().err.split())
        assert f"squall {command}: cannot use the results database (--results-db)" in out
        assert f"the results database {fresh_db} is at schema version {NEWEST_VERSION + 1}" in out
        assert f"newer than version {NEWEST_VERSION}, the newest this squall knows" in out
        assert "Upgrade squall, or store results in another database" in out
        assert "URL's user, password" not in out  # not a connection problem


def test_a_damaged_persistent_cluster_is_named_with_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SQUALL_RESULTS_DB", raising=False)
    # Not under tmp_path: see test_persistent_cluster_keeps_data_between_starts.
    root = Path(tempfile.mkdtemp(prefix="squall-persistent-test-"))
    datadir = root / ".db" / "data"
    datadir.mkdir(parents=True)
    (datadir / "PG_VERSION").write_text("garbage\n")  # a cluster with its files lost
    try:
        assert main(["history", "--results-dir", str(root)]) == 3
        out = " ".join(capsys.readouterr().err.split())
        assert f"cannot use the results database (embedded cluster in {root / '.db'})" in out
        assert f"move {datadir} aside (squall then creates a new, empty one)" in out
        assert "URL's user, password" not in out
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def test_another_applications_migrations_table_is_named_not_a_traceback(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its text versions crashed a passing run after its files were written (TypeError,
    # exit 1), and history advised checking the URL's password.
    asyncio.run(
        _execute(
            fresh_db,
            "CREATE TABLE squall_schema_migrations (version text PRIMARY KEY, name text)",
            "INSERT INTO squall_schema_migrations VALUES ('20240101_init', 'x')",
        )
    )
    argv = ["run", "-s", "redis_locks", "--results-db", fresh_db, "--no-progress"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "! the run was not stored in the results database" in out
    assert "its table squall_schema_migrations is not squall's (a text version column" in out
    assert "store results in a database of their own" in out
    assert list(tmp_path.glob("*/report.json"))
    for command in ("history", "compare"):
        assert main([command, "--results-db", fresh_db]) == 2
        assert "is not squall's (a text version column" in " ".join(capsys.readouterr().err.split())


def test_history_and_compare_read_a_read_only_database(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Up to date, it is only read; it was migrated first, which a read-only database (or a
    # role that may only SELECT) refused.
    argv = ["run", "-s", "redis_locks", "--results-db", fresh_db, "--no-progress"]
    for _ in range(2):
        assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    database = fresh_db.rsplit("/", 1)[1]
    asyncio.run(
        _execute(fresh_db, f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    )
    assert main(["history", "--results-db", fresh_db]) == 0
    assert "redis_locks" in capsys.readouterr().out
    assert main(["compare", "--results-db", fresh_db]) == 0
    assert "no regression" in capsys.readouterr().out


def test_reading_where_no_run_was_stored_creates_no_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `squall history` in a folder with no runs created a 46 MB cluster in
    # ./squall-results/.db just to say there was nothing in it.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SQUALL_RESULTS_DB", raising=False)
    results = tmp_path / "squall-results"
    assert main(["history", "--results-dir", str(results)]) == 0
    assert f"no runs stored yet in {results / '.db'}" in capsys.readouterr().out
    assert main(["compare", "--results-dir", str(results)]) == 2
    assert f"no run stored yet in {results / '.db'}" in capsys.readouterr().err
    assert not (results / ".db").exists()
