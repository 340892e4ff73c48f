"""The results database on a real PostgreSQL: migrations, writes, functions, queries."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from rich.console import Console

from squall.config import load_config
from squall.metrics.histogram import LatencyHistogram, to_us
from squall.metrics.result import Counter, Rate, RunResult, Trend
from squall.report.publish import publish
from squall.scenarios.db_race import ensure_schema, run_db_race
from squall.services import Endpoints, with_database
from squall.store.location import ResultsDbBusy, ResultsDbTooNew, _ensure_database
from squall.store.migrations import (
    MIGRATION_LOCK,
    MIGRATIONS,
    NEWEST_VERSION,
    SchemaTooNew,
    migrate,
    schema_version,
)
from squall.store.queries import (
    RunNotFound,
    compare_stored,
    list_runs,
    metric_statistics,
    previous_run,
    purge_older_than,
    resolve_run,
    run_figures,
    table_health,
)
from squall.store.records import Provenance
from squall.store.results import check_baseline
from squall.store.writer import save_report
from squall.suite import ScenarioOutcome, SuiteReport

pytestmark = pytest.mark.integration

PROVENANCE = Provenance("0.1.0", "3.11", "Linux", "test-host")


async def test_migrations_are_idempotent_and_safe_concurrently(fresh_db: str) -> None:
    conns = [await asyncpg.connect(fresh_db) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        # Exactly one caller applied every migration; the others found them done.
        assert sorted(applied, key=len) == [[], [], [], [m.version for m in MIGRATIONS]]
        assert await migrate(conns[0]) == []
        assert await schema_version(conns[0]) == MIGRATIONS[-1].version
        # An update touches updated_at through the trigger.
        await conns[0].execute("INSERT INTO test_accounts (label, balance) VALUES ('t', 10)")
        before = await conns[0].fetchval("SELECT updated_at FROM test_accounts")
        await conns[0].execute("UPDATE test_accounts SET balance = 5")
        after = await conns[0].fetchval("SELECT updated_at FROM test_accounts")
        assert after > before
    finally:
        for c in conns:
            await c.close()


async def test_db_race_runs_on_a_migrated_results_database(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        await ensure_schema(conn)  # db_race's own DDL on top of ours: compatible
    finally:
        await conn.close()
    report = await run_db_race(fresh_db, writers=4, strategies=["atomic"])
    assert report.valid


async def test_an_older_database_migrates_forward(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        # What an older squall left: only its first migration applied.
        await conn.execute("DELETE FROM squall_schema_migrations WHERE version > 1")
        assert await schema_version(conn) == 1
        assert await migrate(conn) == [m.version for m in MIGRATIONS[1:]]
        assert await schema_version(conn) == NEWEST_VERSION
    finally:
        await conn.close()


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def _mark_newer(url: str, version: int) -> None:
    """Make ``url`` look written by a newer squall: a migration this one does not know."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO squall_schema_migrations (version, name) VALUES ($1, 'from the future')",
            version,
        )
    finally:
        await conn.close()


async def test_a_database_a_newer_squall_wrote_is_refused_untouched(fresh_db: str) -> None:
    newer = NEWEST_VERSION + 1
    await _mark_newer(fresh_db, newer)
    conn = await asyncpg.connect(fresh_db)
    try:
        # Drop something migration 3 would recreate: a migrate that went ahead would show.
        await conn.execute("DROP FUNCTION squall_purge_older_than(INTERVAL)")
        await conn.execute("DELETE FROM squall_schema_migrations WHERE version = 3")
        with pytest.raises(SchemaTooNew, match=f"{newer}, newer than version {NEWEST_VERSION}"):
            await migrate(conn)
        versions = {
            r["version"] for r in await conn.fetch("SELECT version FROM squall_schema_migrations")
        }
        assert 3 not in versions
        assert newer in versions
        assert await conn.fetchval("SELECT to_regproc('squall_purge_older_than')") is None
    finally:
        await conn.close()

    url = _with_password(fresh_db, "s3cret-pw")  # trust auth: accepted, and never shown
    data = _suite_report("run-new", _run_result("synthetic", [0.05], 1), 1_000.0).to_dict()
    with pytest.raises(ResultsDbTooNew) as caught:
        await save_report(url, data, PROVENANCE)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert f"results database {_with_password(fresh_db, '***')} " in message
    assert f"schema version {newer}, newer than version {NEWEST_VERSION}" in message
    assert "Upgrade squall, or store results in another database (--results-db" in message
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM high_load_sessions") == 0
    finally:
        await conn.close()


def test_run_with_a_newer_squalls_database_keeps_its_files_and_says_why(
    fresh_db: str, tmp_path: Path
) -> None:
    asyncio.run(_mark_newer(fresh_db, NEWEST_VERSION + 5))
    # --baseline: a run id is not looked up in it (nor refused as unknown) before the run.
    assert check_baseline("run-x", fresh_db, tmp_path, {}) == "run-x"
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    console = Console(record=True, width=400)
    report = _suite_report("run-x", _run_result("synthetic", [0.05], 1), 1_000.0)
    assert publish(report, config, console, results_db=fresh_db) == 0
    text = console.export_text()
    assert "the run was not stored in the results database (--results-db)" in text
    assert f"schema version {NEWEST_VERSION + 5}, newer than version {NEWEST_VERSION}" in text
    assert (tmp_path / "run-x" / "report.json").exists()
    # As for a database that cannot be used: exit code 3 when --baseline needed it.
    assert publish(report, config, console, results_db=fresh_db, baseline="last") == 3


async def test_a_success_rate_with_no_samples_is_stored_and_listed_as_none(fresh_db: str) -> None:
    def stored(run_id: str, started_at: float, *successes: dict[str, object]) -> dict[str, Any]:
        scenarios = []
        for index, success in enumerate(successes):
            data = _suite_report(run_id, _run_result(f"s{index}", [0.05], 1), started_at).to_dict()
            (scenario,) = data["scenarios"]
            scenario["metrics"]["success"] = success
            scenarios.append(scenario)
        return {**data, "scenarios": scenarios}

    older = {**Rate("success", 0, 0).to_dict(), "rate": 0.0}  # as an older squall wrote it
    for report in (
        stored("run-failing", 1_000.0, Rate("success", 0, 2).to_dict()),
        stored("run-unchecked", 2_000.0, Rate("success", 0, 0).to_dict()),
        stored("run-older", 3_000.0, older),
        stored(
            "run-mixed", 4_000.0, Rate("success", 0, 0).to_dict(), Rate("success", 1, 2).to_dict()
        ),
    ):
        await save_report(fresh_db, report, PROVENANCE)
    conn = await asyncpg.connect(fresh_db)
    try:
        rates = {r.run_id: r.success_rate for r in await list_runs(conn)}
        stored_rate = await conn.fetchval(
            "SELECT m.rate FROM performance_metrics m JOIN high_load_sessions s "
            "ON s.id = m.session_id WHERE s.run_id = 'run-unchecked' AND m.metric = 'success'"
        )
    finally:
        await conn.close()
    assert rates == {"run-failing": 0.0, "run-unchecked": None, "run-older": None, "run-mixed": 0.5}
    assert stored_rate is None
    conn = await asyncpg.connect(fresh_db)
    try:
        # What an older squall stored for an older report's rate of nothing: 0.
        await conn.execute(
            "UPDATE performance_metrics m SET rate = 0 FROM high_load_sessions s "
            "WHERE s.id = m.session_id AND s.run_id = 'run-mixed' AND m.count = 0"
        )
        lowest = {
            run: {r["metric"]: r for r in await metric_statistics(conn, run)}["success"]
            for run in ("run-failing", "run-unchecked", "run-older", "run-mixed")
        }
        older_row = await conn.fetchval(
            "SELECT m.rate FROM performance_metrics m JOIN high_load_sessions s "
            "ON s.id = m.session_id WHERE s.run_id = 'run-older' AND m.metric = 'success'"
        )
    finally:
        await conn.close()
    # The database's own statistics leave the rows without samples out too.
    assert {run: row["rate_min"] for run, row in lowest.items()} == {
        "run-failing": 0.0,
        "run-unchecked": None,
        "run-older": None,
        "run-mixed": 0.5,
    }
    assert older_row is None  # an older report's 0 for a rate of nothing is stored NULL


async def test_a_trend_with_no_samples_is_stored_null_and_neither_listed_nor_compared(
    fresh_db: str,
) -> None:
    statistics = ("min", "max", "mean", "stdev", "p50", "p90", "p95", "p99", "p999")
    columns = ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max")  # of the statistics

    def stored(run_id: str, started_at: float, *latencies: list[float]) -> dict[str, Any]:
        scenarios = []
        for index, values in enumerate(latencies):
            data = _suite_report(run_id, _run_result(f"s{index}", values, 1), started_at).to_dict()
            scenarios.extend(data["scenarios"])
        return {**data, "scenarios": scenarios}

    older = stored("run-older-report", 3_000.0, [])
    trend = older["scenarios"][0]["metrics"]["response_time"]
    trend.update(dict.fromkeys(statistics, 0.0))  # as an older squall wrote report.json
    for report in (
        stored("run-timed", 1_000.0, [0.05, 0.07]),
        stored("run-untimed", 2_000.0, []),
        older,
        stored("run-older-rows", 4_000.0, []),
        stored("run-mixed", 5_000.0, [], [0.2]),
    ):
        await save_report(fresh_db, report, PROVENANCE)
    stored_by = "FROM performance_metrics m JOIN high_load_sessions s ON s.id = m.session_id"
    conn = await asyncpg.connect(fresh_db)
    try:
        # The rows an older squall stored for a trend with no samples: zeros.
        await conn.execute(
            f"UPDATE performance_metrics m SET {', '.join(f'{k} = 0' for k in columns)} "
            "FROM high_load_sessions s WHERE s.id = m.session_id "
            "AND s.run_id = 'run-older-rows' AND m.metric = 'response_time'"
        )
        p95s = {r.run_id: r.response_p95_s for r in await list_runs(conn)}
        rows = await conn.fetch(
            f"SELECT s.run_id, m.count, {', '.join(f'm.{k}' for k in columns)} {stored_by} "
            "WHERE m.metric = 'response_time' AND s.run_id IN ('run-untimed', 'run-older-report')"
        )
        comparison = await compare_stored(conn, "run-timed", "run-older-rows", tolerance=0.1)
        figures = await run_figures(conn, "run-untimed")
    finally:
        await conn.close()
    assert p95s["run-timed"] == pytest.approx(0.07, rel=0.01)
    assert p95s["run-mixed"] == pytest.approx(0.2, rel=0.01)
    assert {k: v for k, v in p95s.items() if v is None} == dict.fromkeys(
        ("run-untimed", "run-older-report", "run-older-rows")
    )
    assert sorted(r["run_id"] for r in rows) == ["run-older-report", "run-untimed"]
    for row in rows:
        assert (row["count"], *(row[k] for k in columns)) == (0, *(None for _ in columns))
    assert [f for f in figures if f.metric == "response_time"] == []
    timed = {c.stat: c for c in comparison.changes if c.metric == "response_time"}
    assert set(timed) == {"mean", "p50", "p95", "p99"}
    assert all(c.after is None and not c.regression for c in timed.values())
    assert comparison.regressions == ()


async def test_coordination_figures_of_nothing_are_stored_null_and_migrated_to_null(
    fresh_db: str,
) -> None:
    def stored(run_id: str, started_at: float, success: Rate, delivery: Rate) -> dict[str, Any]:
        timed = [0.05] if success.total else []
        data = _suite_report(run_id, _run_result("s", timed, 1), started_at).to_dict()
        (scenario,) = data["scenarios"]
        connect = Trend.from_histogram("ws_connect", LatencyHistogram.of(timed)).to_dict()
        scenario["metrics"].update(
            ws_connect=connect, success=success.to_dict(), delivery=delivery.to_dict()
        )
        return data

    older = stored("run-older-report", 3_000.0, Rate("success", 0, 0), Rate("delivery", 0, 0))
    for name in ("success", "delivery"):  # as an older squall wrote report.json
        older["scenarios"][0]["metrics"][name]["rate"] = 0.0
    for report in (
        stored("run-checked", 1_000.0, Rate("success", 1, 2), Rate("delivery", 0, 3)),
        stored("run-unchecked", 2_000.0, Rate("success", 0, 0), Rate("delivery", 0, 0)),
        older,
    ):
        await save_report(fresh_db, report, PROVENANCE)
    figures = "w.connections, w.connect_p95_s, w.delivery_rate, w.success_rate"
    read = (
        f"SELECT s.run_id, {figures} FROM websocket_coordination w "
        "JOIN high_load_sessions s ON s.id = w.session_id"
    )
    conn = await asyncpg.connect(fresh_db)
    try:
        written = {r["run_id"]: tuple(r)[1:] for r in await conn.fetch(read)}
        # What an older squall stored for figures of nothing: 0, in the rates' own rows
        # too, and no migration 5.
        await conn.execute(
            "UPDATE websocket_coordination w "
            "SET connect_p95_s = 0, delivery_rate = 0, success_rate = 0 "
            "FROM high_load_sessions s WHERE s.id = w.session_id AND s.run_id <> 'run-checked'"
        )
        await conn.execute("UPDATE performance_metrics SET rate = 0 WHERE count = 0")
        await conn.execute("DELETE FROM squall_schema_migrations WHERE version = 5")
        applied = await migrate(conn)
        migrated = {r["run_id"]: tuple(r)[1:] for r in await conn.fetch(read)}
        successes = {r.run_id: r.success_rate for r in await list_runs(conn)}
        empty = await run_figures(conn, "run-unchecked")
    finally:
        await conn.close()
    assert written["run-checked"][0] == 1
    assert written["run-checked"][1] == pytest.approx(0.05, rel=0.01)
    checked = (1, written["run-checked"][1], 0.0, 0.5)  # a delivery of 0 % is a figure
    nothing = (0, None, None, None)
    assert written == {
        "run-checked": checked,
        "run-unchecked": nothing,
        "run-older-report": nothing,
    }
    assert applied == [5]
    assert migrated == written
    # squall history and compare read the rates' performance_metrics rows (count 0): no
    # success to list, no figure to compare.
    assert successes == {
        "run-checked": 0.5,
        "run-unchecked": None,
        "run-older-report": None,
    }
    assert [f for f in empty if f.metric in ("success", "delivery", "ws_connect")] == []


async def test_an_older_squalls_statistics_of_nothing_are_migrated_to_null(fresh_db: str) -> None:
    columns = ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max")
    timed = _suite_report("run-timed", _run_result("s", [0.05, 0.07], 0), 1_000.0)
    untimed = _suite_report("run-untimed", _run_result("s", [], 2), 2_000.0)
    for report in (timed, untimed):
        await save_report(fresh_db, report.to_dict(), PROVENANCE)
    read = (
        f"SELECT s.run_id, m.metric, m.count, m.rate, {', '.join(f'm.{k}' for k in columns)} "
        "FROM performance_metrics m JOIN high_load_sessions s ON s.id = m.session_id "
        "WHERE m.metric IN ('response_time', 'success') ORDER BY 1, 2"
    )
    conn = await asyncpg.connect(fresh_db)
    try:
        written = [tuple(r) for r in await conn.fetch(read)]
        # What an older squall stored for a trend and a rate of nothing: 0, and no migration 6.
        await conn.execute(
            f"UPDATE performance_metrics SET {', '.join(f'{k} = 0' for k in columns)} "
            "WHERE kind = 'trend' AND count = 0"
        )
        await conn.execute("UPDATE performance_metrics SET rate = 0 WHERE kind = 'rate'")
        await conn.execute("DELETE FROM squall_schema_migrations WHERE version = 6")
        applied = await migrate(conn)
        migrated = [tuple(r) for r in await conn.fetch(read)]
    finally:
        await conn.close()
    nothing = (None,) * len(columns)
    assert [r[:4] for r in written] == [
        ("run-timed", "response_time", 2, None),
        ("run-timed", "success", 0, None),
        ("run-untimed", "response_time", 0, None),
        ("run-untimed", "success", 2, 1.0),
    ]
    assert written[0][4] == pytest.approx(0.05, rel=0.01)
    assert written[2][4:] == nothing
    assert applied == [6]
    # The rate of 2 checks set to 0 % above is a measured 0 %, and stays.
    assert migrated == [*written[:3], ("run-untimed", "success", 2, 0.0, *nothing)]


def _run_result(scenario: str, latencies: list[float], sent: int) -> RunResult:
    histogram = LatencyHistogram.of(latencies)
    return RunResult(
        scenario=scenario,
        params={},
        workload={"model": "closed", "users": 3},
        started_at=1_000.0,
        ended_at=1_010.0,
        duration_s=10.0,
        processes=1,
        metrics={
            "response_time": Trend.from_histogram("response_time", histogram),
            "messages_sent": Counter("messages_sent", sent, sent / 10.0),
            "success": Rate("success", sent, sent),
        },
    )


def _suite_report(run_id: str, result: RunResult, started_at: float) -> SuiteReport:
    outcome = ScenarioOutcome(
        name=result.scenario,
        metrics=dict(result.metrics),
        outcomes=[],
        result=result.to_dict(),
        duration_s=result.duration_s,
    )
    return SuiteReport(
        run_id=run_id,
        started_at=started_at,
        finished_at=started_at + 10,
        scenarios=[outcome],
        config={"scenarios": [result.scenario]},
    )


async def test_a_run_in_which_nothing_ran_is_stored_and_listed_as_such(fresh_db: str) -> None:
    report = _suite_report("run-none", _run_result("synthetic", [0.05], 1), 1_000.0).to_dict()
    report["scenarios"][0]["ran"] = False
    assert report["verdict"]["ok"]
    await save_report(fresh_db, report, PROVENANCE)
    conn = await asyncpg.connect(fresh_db)
    try:
        (run,) = await list_runs(conn)
    finally:
        await conn.close()
    assert run.verdict == "nothing ran"


async def test_save_and_query(fresh_db: str) -> None:
    scenario = "synthetic"
    fast = _suite_report("run-a", _run_result(scenario, [0.05, 0.06, 0.07], 30), 1_000.0)
    slow = _suite_report("run-b", _run_result(scenario, [0.10, 0.12, 0.14], 30), 2_000.0)
    id_a = await save_report(fresh_db, fast.to_dict(), PROVENANCE)
    await save_report(fresh_db, slow.to_dict(), PROVENANCE)
    # Storing a run again replaces it rather than duplicating it.
    id_a2 = await save_report(fresh_db, fast.to_dict(), PROVENANCE)
    assert id_a2 != id_a
    conn = await asyncpg.connect(fresh_db)
    try:
        runs = await list_runs(conn)
        assert [r.run_id for r in runs] == ["run-b", "run-a"]
        assert runs[0].response_p95_s == pytest.approx(0.14, rel=0.01)
        assert runs[0].success_rate == 1.0
        assert await resolve_run(conn, "last") == "run-b"
        assert await resolve_run(conn, "run-a") == "run-a"
        assert await resolve_run(conn, "run-b") == "run-b"
        with pytest.raises(RunNotFound, match="matches several runs"):
            await resolve_run(conn, "run-")
        # A prefix is matched as text: '_' and '%' are no wildcards.
        with pytest.raises(RunNotFound, match="no stored run matches 'run_a'"):
            await resolve_run(conn, "run_a")
        with pytest.raises(RunNotFound, match="no stored run matches '%'"):
            await resolve_run(conn, "%")
        with pytest.raises(RunNotFound, match="an empty run id"):
            await resolve_run(conn, "")
        assert await previous_run(conn, "run-b") == "run-a"
        assert await previous_run(conn, "run-a") is None
        users = await conn.fetch("SELECT users, model FROM concurrent_test_users")
        assert [(r["users"], r["model"]) for r in users] == [(3, "closed")] * 2

        stats = {r["metric"]: r for r in await metric_statistics(conn, "run-b")}
        assert stats["response_time"]["total_count"] == 3
        assert stats["response_time"]["p99_max"] == pytest.approx(0.14, rel=0.01)
        assert stats["success"]["rate_min"] == 1.0

        session_id = await conn.fetchval("SELECT id FROM high_load_sessions WHERE run_id = 'run-b'")
        event = await conn.fetchval(
            "SELECT squall_record_race_event($1, 'synthetic', 'manual', 'violation', 2, "
            "'ledger.balance', 'balance below zero', '{\"balance\": -10}'::jsonb)",
            session_id,
        )
        row = await conn.fetchrow("SELECT * FROM race_condition_events WHERE id = $1", event)
        assert (row["kind"], row["count"], row["checker"]) == ("violation", 2, "ledger.balance")
        with pytest.raises(asyncpg.PostgresError, match="not one of"):
            await conn.fetchval(
                "SELECT squall_record_race_event($1, 's', 'x', 'maybe')", session_id
            )

        health = {r["table_name"]: r for r in await table_health(conn)}
        assert health["high_load_sessions"]["row_count"] == 2
        assert health["performance_metrics"]["row_count"] == 6
        assert health["race_condition_events"]["row_count"] == 1
        assert health["race_condition_events"]["last_write"] is not None
        assert health["resource_samples"]["row_count"] == 0
        assert health["high_load_sessions"]["total_bytes"] > 0

        # Both runs started in 1970: a 30-day retention removes them and their rows.
        assert await purge_older_than(conn, 30) == 2
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 0
        assert await purge_older_than(conn, 30) == 0
    finally:
        await conn.close()


async def test_a_stored_trend_keeps_its_exact_extremes(fresh_db: str) -> None:
    # 8,000..8,003 µs share a slot, which the histogram alone reads as 8.003 ms.
    latencies = [0.008] * 8 + [0.0123]
    result = _run_result("synthetic", latencies, 9)
    await save_report(fresh_db, _suite_report("run-x", result, 1_000.0).to_dict(), PROVENANCE)
    conn = await asyncpg.connect(fresh_db)
    try:
        row = await conn.fetchrow(
            "SELECT count, min, max, p50, p99, p999, histogram FROM performance_metrics "
            "WHERE metric = 'response_time'"
        )
        stats = {r["metric"]: r for r in await metric_statistics(conn, "run-x")}
    finally:
        await conn.close()
    assert (row["count"], row["min"], row["max"]) == (9, 0.008, 0.0123)
    assert (row["p50"], row["p99"], row["p999"]) == (0.008003, 0.0123, 0.0123)
    assert (stats["response_time"]["max"], stats["response_time"]["p99_max"]) == (0.0123, 0.0123)
    # The histogram column is HdrHistogram's standard encoding; min and max beside it are
    # the exact extremes it is read with.
    stored = LatencyHistogram.decode(row["histogram"], (to_us(row["min"]), to_us(row["max"])))
    assert stored.pack() == LatencyHistogram.of(latencies).pack()
    assert LatencyHistogram.decode(row["histogram"]).max == 0.012303


async def test_a_run_whose_texts_hold_nul_characters_is_stored(fresh_db: str) -> None:
    # A target may send a NUL in an error code or message; PostgreSQL text and JSONB hold none.
    result = _run_result("synthetic", [0.05], 1)
    result.metrics["errors.server.a\x00b"] = Counter("errors.server.a\x00b", 2, 0.2)
    data = _suite_report("run-nul", result, 1_000.0).to_dict()
    (scenario,) = data["scenarios"]
    scenario["notes"] = ["note \x00"]
    scenario["result"]["errors"] = [
        {"kind": "server.a\x00b", "count": 2, "samples": ["frame \x00 here"]}
    ]
    scenario["result"]["verdict"] = {
        "checker": "isolation.threads",
        "valid": False,
        "summary": "leak \x00",
        "counts": {"violations": 1},
        "evidence": [{"kind": "leak", "message": "saw \x00", "ops": [], "details": {"k\x00": 1}}],
    }
    await save_report(fresh_db, data, PROVENANCE)
    conn = await asyncpg.connect(fresh_db)
    try:
        metrics = await conn.fetch("SELECT metric FROM performance_metrics ORDER BY metric")
        assert "errors.server.a\\x00b" in [r["metric"] for r in metrics]
        summary = await conn.fetchval("SELECT summary FROM user_isolation_test_data")
        assert summary == "leak \\x00"
        events = await conn.fetch("SELECT message FROM race_condition_events")
        assert "saw \\x00" in [r["message"] for r in events]
    finally:
        await conn.close()


async def test_a_write_blocked_by_another_sessions_lock_gives_up_and_names_the_fix(
    fresh_db: str,
) -> None:
    data = _suite_report("run-locked", _run_result("synthetic", [0.05], 1), 1_000.0).to_dict()
    holder = await asyncpg.connect(fresh_db)
    try:
        await migrate(holder)
        for lock in (
            "LOCK TABLE high_load_sessions IN ACCESS EXCLUSIVE MODE",  # a transaction left open
            f"SELECT pg_advisory_xact_lock(hashtext('{MIGRATION_LOCK}'))",  # a stuck migration
        ):
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute(lock)
            try:
                with pytest.raises(ResultsDbBusy, match=r"more than 0\.2 s; find it in pg_stat"):
                    await asyncio.wait_for(
                        save_report(fresh_db, data, PROVENANCE, lock_timeout_s=0.2),
                        timeout=60,  # a bound: the lock timeout must end it first
                    )
            finally:
                await transaction.rollback()
        await save_report(fresh_db, data, PROVENANCE, lock_timeout_s=0.2)  # free again
        assert await resolve_run(holder, "last") == "run-locked"
    finally:
        await holder.close()


def test_baseline_flags_an_injected_regression(pg_url: str, tmp_path: Path) -> None:
    scenario = f"synthetic_{secrets.token_hex(3)}"  # its own scenario set in the shared db
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    console = Console(record=True, width=200)
    now = 1_900_000_000.0
    base = _suite_report(f"{scenario}-1", _run_result(scenario, [0.05, 0.06, 0.07], 30), now)
    assert publish(base, config, console, results_db=pg_url, baseline="last") == 0
    assert "nothing to compare" in console.export_text()

    same = _suite_report(f"{scenario}-2", _run_result(scenario, [0.05, 0.06, 0.07], 30), now + 60)
    assert publish(same, config, console, results_db=pg_url, baseline="last") == 0

    slow = _suite_report(f"{scenario}-3", _run_result(scenario, [0.20, 0.25, 0.30], 30), now + 120)
    assert publish(slow, config, console, results_db=pg_url, baseline="last") == 1
    text = console.export_text()
    assert f"regression [{scenario}] response_time p95" in text
    assert f"against {scenario}-2" in text
    assert "FAILED: every threshold held, but the run regressed against its baseline" in text
    # Every file is on disk whatever the database said.
    folder = tmp_path / f"{scenario}-3"
    assert {p.name for p in folder.iterdir()} >= {
        "report.json",
        "report.html",
        "junit.xml",
        "metrics.txt",
    }
    # And each says the run failed, as its exit code does: every file said "passed".
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"]["ok"] is False
    assert report["verdict"]["regressions"] >= 1
    assert report["baseline"]["run_id"] == f"{scenario}-2"
    assert any("response_time p95" in r for r in report["baseline"]["regressions"])
    junit = (folder / "junit.xml").read_text()
    assert '<testsuite name="baseline" tests="1" failures="1"' in junit
    assert 'type="regression"' in junit
    assert "squall_run_passed 0" in (folder / "metrics.txt").read_text()
    page = (folder / "report.html").read_text()
    assert '<span class="badge fail">FAILED</span>' in page
    assert f"regression(s) against {scenario}-2" in page
    assert asyncio.run(_stored_verdicts(pg_url, scenario)) == {
        f"{scenario}-1": "passed",
        f"{scenario}-2": "passed",
        f"{scenario}-3": "failed",
    }
    # A run compared without regression says so in its files and stays passed.
    same_report = json.loads((tmp_path / f"{scenario}-2" / "report.json").read_text())
    assert same_report["verdict"]["ok"] is True
    assert same_report["baseline"]["regressions"] == []


async def _stored_verdicts(url: str, scenario: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT run_id, verdict FROM high_load_sessions WHERE run_id LIKE $1", f"{scenario}-%"
        )
    finally:
        await conn.close()
    return {r["run_id"]: r["verdict"] for r in rows}


def test_a_baseline_of_other_scenarios_compares_nothing_and_says_so(
    pg_url: str, tmp_path: Path
) -> None:
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    console = Console(record=True, width=200)
    one, other = (f"synthetic_{secrets.token_hex(3)}" for _ in range(2))
    first = _suite_report(f"{one}-1", _run_result(one, [0.05, 0.06], 30), 1_900_000_000.0)
    assert publish(first, config, console, results_db=pg_url) == 0
    second = _suite_report(f"{other}-1", _run_result(other, [0.05, 0.06], 30), 1_900_000_060.0)
    # Was "no regression": a verdict on nothing.
    assert publish(second, config, console, results_db=pg_url, baseline=f"{one}-1") == 3
    text = " ".join(console.export_text().split())
    assert f"✗ nothing compared: {one}-1 and {other}-1 share no figure" in text
    assert "no regression" not in text


def test_unreachable_database_keeps_files_and_exit_code(tmp_path: Path) -> None:
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    console = Console(record=True, width=200)
    report = _suite_report("run-x", _run_result("synthetic", [0.05], 1), 1_000.0)
    dead = "postgresql://postgres@127.0.0.1:1/none"
    assert publish(report, config, console, results_db=dead) == 0
    assert "was not stored" in console.export_text()
    assert (tmp_path / "run-x" / "report.json").exists()
    assert publish(report, config, console, results_db=dead, baseline="last") == 3


async def test_processes_creating_the_results_database_at_once_all_use_it(
    endpoints: Endpoints,
) -> None:
    # Creations that overlap fail with a unique violation on pg_database's name index, not
    # DuplicateDatabaseError: every run but one said "not stored" on a new server.
    name = f"squall_test_{secrets.token_hex(4)}"
    try:
        for _ in range(3):
            await asyncio.gather(
                *(_ensure_database(endpoints.database_url, name) for _ in range(6))
            )
            conn = await asyncpg.connect(with_database(endpoints.database_url, name))
            await conn.close()
            await _drop(endpoints.database_url, name)
    finally:
        await _drop(endpoints.database_url, name)


async def _drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
