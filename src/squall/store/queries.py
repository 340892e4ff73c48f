"""Read runs back: history, a run's figures, and which run to compare with which."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from squall.report.compare import (
    Comparison,
    Figure,
    compare,
    figures_of,
    setting_differences,
)


class RunNotFound(LookupError):
    """A run reference that matches no stored run (or several)."""


@dataclass(frozen=True)
class RunSummary:
    """One line of ``squall history``."""

    run_id: str
    started_at: datetime
    scenarios: tuple[str, ...]
    verdict: str
    #: Key figures: worst response_time p95 (s; None when no scenario timed a response),
    #: lowest success rate (None when no scenario checked any), total violations.
    response_p95_s: float | None
    success_rate: float | None
    violations: float | None


async def list_runs(conn: asyncpg.Connection, *, limit: int = 20) -> list[RunSummary]:
    """The latest ``limit`` runs, newest first, with their key figures."""
    # A response time or success rate with no samples (count 0) is no figure: null since
    # it is stored so, 0 as an older squall stored it.
    rows = await conn.fetch(
        """
        SELECT s.run_id, s.started_at, s.scenarios, s.verdict,
               (SELECT max(p95) FROM performance_metrics m
                 WHERE m.session_id = s.id AND m.metric = 'response_time'
                   AND m.count > 0) AS p95,
               (SELECT min(rate) FROM performance_metrics m
                 WHERE m.session_id = s.id AND m.metric = 'success'
                   AND m.count > 0) AS success,
               (SELECT sum(value) FROM performance_metrics m
                 WHERE m.session_id = s.id AND m.metric = 'violations') AS violations
        FROM high_load_sessions s
        ORDER BY s.started_at DESC, s.id DESC
        LIMIT $1
        """,
        limit,
    )
    return [
        RunSummary(
            r["run_id"],
            r["started_at"],
            tuple(r["scenarios"]),
            r["verdict"],
            r["p95"],
            r["success"],
            r["violations"],
        )
        for r in rows
    ]


async def resolve_run(conn: asyncpg.Connection, ref: str) -> str:
    """A run id from ``ref``: ``last``, a full id, or an unambiguous prefix of one."""
    if not ref.strip():
        raise RunNotFound("an empty run id; give 'last' or a run id (`squall history` lists them)")
    if ref == "last":
        found = await conn.fetchval(
            "SELECT run_id FROM high_load_sessions ORDER BY started_at DESC, id DESC LIMIT 1"
        )
        if found is None:
            raise RunNotFound("the results database holds no run yet; run `squall run` first")
        return str(found)
    rows = await conn.fetch(
        "SELECT run_id FROM high_load_sessions WHERE starts_with(run_id, $1) "
        "ORDER BY run_id LIMIT 3",
        ref,
    )
    exact = [r["run_id"] for r in rows if r["run_id"] == ref]
    if exact:
        return str(exact[0])
    if len(rows) == 1:
        return str(rows[0]["run_id"])
    if not rows:
        raise RunNotFound(f"no stored run matches {ref!r}; `squall history` lists the run ids")
    raise RunNotFound(
        f"{ref!r} matches several runs ({', '.join(r['run_id'] for r in rows)}...); "
        "give more of the id"
    )


async def mark_failed(conn: asyncpg.Connection, run_id: str) -> None:
    """Record ``run_id`` as failed (it regressed against its baseline); an interrupted run
    stays interrupted."""
    await conn.execute(
        "UPDATE high_load_sessions SET verdict = 'failed' WHERE run_id = $1 AND verdict = 'passed'",
        run_id,
    )


async def previous_run(conn: asyncpg.Connection, run_id: str) -> str | None:
    """The latest run of the same scenario set that started before ``run_id``."""
    found = await conn.fetchval(
        """
        SELECT p.run_id FROM high_load_sessions s
        JOIN high_load_sessions p
          ON p.scenario_set = s.scenario_set
         AND (p.started_at, p.id) < (s.started_at, s.id)
        WHERE s.run_id = $1
        ORDER BY p.started_at DESC, p.id DESC
        LIMIT 1
        """,
        run_id,
    )
    return None if found is None else str(found)


async def run_figures(conn: asyncpg.Connection, run_id: str) -> list[Figure]:
    rows = await conn.fetch(
        """
        SELECT m.* FROM performance_metrics m
        JOIN high_load_sessions s ON s.id = m.session_id
        WHERE s.run_id = $1
        ORDER BY m.scenario, m.metric
        """,
        run_id,
    )
    return figures_of([dict(r) for r in rows])


async def compare_stored(
    conn: asyncpg.Connection, before_id: str, after_id: str, *, tolerance: float
) -> Comparison:
    """Two stored runs' figures side by side, with how their settings differ."""
    differences = setting_differences(
        await run_settings(conn, before_id), await run_settings(conn, after_id)
    )
    return compare(
        await run_figures(conn, before_id),
        await run_figures(conn, after_id),
        tolerance=tolerance,
        before_id=before_id,
        after_id=after_id,
        differences=differences,
    )


async def run_settings(conn: asyncpg.Connection, run_id: str) -> dict[str, Any]:
    """How ``run_id`` was set up: its stored ``config``, the ``host`` it ran on and whether
    it was ``interrupted``."""
    row = await conn.fetchrow(
        "SELECT config, host, interrupted FROM high_load_sessions WHERE run_id = $1", run_id
    )
    if row is None:
        raise RunNotFound(f"no stored run {run_id!r}")
    config = row["config"]
    settings = dict(json.loads(config) if isinstance(config, str) else config or {})
    if row["host"] is not None:
        settings["host"] = row["host"]
    settings["interrupted"] = bool(row["interrupted"])
    return settings


async def metric_statistics(conn: asyncpg.Connection, run_id: str) -> list[dict[str, Any]]:
    """``squall_metric_statistics`` for a run: per metric, aggregated over its scenarios."""
    session_id = await conn.fetchval("SELECT id FROM high_load_sessions WHERE run_id = $1", run_id)
    if session_id is None:
        raise RunNotFound(f"no stored run {run_id!r}")
    rows = await conn.fetch("SELECT * FROM squall_metric_statistics($1)", session_id)
    return [dict(r) for r in rows]


async def table_health(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch("SELECT * FROM squall_table_health()")]


async def purge_older_than(conn: asyncpg.Connection, days: float) -> int:
    """Delete runs older than ``days`` days (and everything they own); return how many."""
    return int(await conn.fetchval("SELECT squall_purge_older_than($1 * interval '1 day')", days))
