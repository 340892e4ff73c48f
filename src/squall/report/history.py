"""``squall history`` and ``squall compare``: the results database, read for people.

They read the runs ``squall run`` stored from the same folder: ``--results-db`` and
``--results-dir`` when given, else the config file's ``[results] database_url`` and
``[run] results_dir`` (the file found as ``squall run`` finds it, or ``--config``).

Exit codes: 0 done (compare: no regression), 1 compare found a regression,
2 a run reference matched nothing, the two runs share no figure, too little is stored,
the config file cannot be used, or the results database setting is ``off`` or not a
PostgreSQL URL, 3 the
results database cannot be reached or used (kept locked, or written by a newer squall).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from squall.config import ConfigError, load_config
from squall.report.compare import Comparison
from squall.report.console import error_console, literal, output_console
from squall.report.publish import print_comparison
from squall.services import ProcessStartError
from squall.services.persistent import PersistentLockTimeout
from squall.store.location import (
    ResultsDbBusy,
    ResultsDbError,
    ResultsDbTooNew,
    Source,
    chosen_setting,
    connection,
    describe,
    error_text,
    missing_default_cluster,
    results_database,
    source_of,
)
from squall.store.migrations import NEWEST_VERSION, known_schema_version, migrate
from squall.store.queries import (
    RunNotFound,
    RunSummary,
    compare_stored,
    list_runs,
    previous_run,
    resolve_run,
)

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresError,
    ProcessStartError,
    PersistentLockTimeout,
    ResultsDbTooNew,
)


@dataclass(frozen=True)
class Stored:
    """Where the stored runs are read: the results database setting (None: the default
    database), where that setting came from, and the results folder of the default one."""

    results_db: str | None
    results_db_name: str
    results_dir: Path


def stored(
    config: Path | None, results_db: str | None, results_dir: Path | None, *, cwd: Path
) -> Stored:
    """The options given, else what the config file says (``--config``, or the file
    ``squall run`` finds from ``cwd``); :class:`~squall.config.ConfigError` when that file
    cannot be used."""
    loaded = load_config(config, cwd=cwd)
    setting, name = chosen_setting(results_db, loaded.results.database_url)
    folder = results_dir if results_dir is not None else loaded.run.results_dir
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"the results folder {folder} is a file, not a folder; pass --results-dir the "
            "folder squall run wrote to"
        )
    return Stored(results_db=setting, results_db_name=name, results_dir=folder)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:.4g}"


def history_table(runs: Sequence[RunSummary]) -> Table:
    table = Table(title="Runs (newest first)", title_justify="left")
    for column in ("run", "started", "scenarios", "verdict", "p95 response", "success", "viol."):
        table.add_column(column)
    for r in runs:
        style = {"passed": "green", "failed": "bold red"}.get(r.verdict, "yellow")
        table.add_row(
            literal(r.run_id),
            r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            literal(", ".join(r.scenarios)),
            f"[{style}]{literal(r.verdict)}[/{style}]",
            _fmt(r.response_p95_s, "ms"),
            f"{r.success_rate:.2%}" if r.success_rate is not None else "—",
            _fmt(r.violations),
        )
    return table


def comparison_table(comparison: Comparison) -> Table:
    table = Table(
        title=literal(f"{comparison.before_id} → {comparison.after_id}"), title_justify="left"
    )
    for column in ("scenario", "metric", "figure", "before", "after", "change", ""):
        table.add_column(column)
    for c in comparison.changes:
        rel = c.relative
        flag = "[bold red]REGRESSION[/bold red]" if c.regression else ""
        table.add_row(
            literal(c.scenario),
            literal(c.metric),
            literal(c.stat),
            _fmt(c.before),
            _fmt(c.after),
            f"{rel:+.1%}" if rel is not None else "—",
            flag,
        )
    return table


def history(
    *,
    results_db: str | None,
    results_dir: Path | None,
    config: Path | None = None,
    limit: int = 20,
    console: Console | None = None,
    err: Console | None = None,
    cwd: Path | None = None,
) -> int:
    """List the stored runs on ``console``; refusals go to ``err`` (standard error)."""
    console = console or output_console()
    err = err or error_console()

    async def go(url: str) -> list[RunSummary]:
        async with connection(url) as conn:
            if not await _readable(conn):
                return []
            return await list_runs(conn, limit=limit)

    try:
        where = stored(config, results_db, results_dir, cwd=cwd or Path.cwd())
    except ConfigError as exc:
        err.print(f"[red]squall history: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    missing = missing_default_cluster(where.results_db, where.results_dir, os.environ)
    if missing is not None:
        console.print(
            f"no runs stored yet in {literal(missing)}: `squall run` stores each run",
            highlight=False,
        )
        return EXIT_OK
    try:
        with _database(where) as url:
            runs = asyncio.run(go(url))
    except ResultsDbError as exc:
        err.print(f"[red]squall history: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    except _UNREACHABLE as exc:
        _print_unreachable(err, "history", where, exc)
        return EXIT_UNREACHABLE
    if not runs:
        console.print("no runs stored yet: `squall run` stores each run")
        return EXIT_OK
    console.print(history_table(runs))
    return EXIT_OK


def _database(where: Stored) -> contextlib.AbstractContextManager[str]:
    return results_database(
        where.results_db, where.results_dir, explicit_name=where.results_db_name
    )


def _print_unreachable(console: Console, command: str, where: Stored, exc: BaseException) -> None:
    described = describe(where.results_db, where.results_dir, os.environ, where.results_db_name)
    # A busy database, a newer squall's and the embedded cluster (no URL given) name their
    # own fix.
    by_url = source_of(where.results_db, os.environ)[0] is not Source.CLUSTER
    fix = (
        "; check that it runs and that the URL's user, password, host and port are right, "
        f"or leave {literal(where.results_db_name)} and SQUALL_RESULTS_DB unset for the default "
        "one"
        if by_url and not isinstance(exc, ResultsDbBusy | ResultsDbTooNew)
        else ""
    )
    console.print(
        f"[red]squall {command}: cannot use the results database ({literal(described)}): "
        f"{literal(error_text(exc))}{fix}[/red]",
        highlight=False,
    )


async def _readable(conn: asyncpg.Connection) -> bool:
    """Bring squall's tables up to date for reading (an older squall may have stored the
    runs); False, creating nothing, for a database squall has never stored a run in."""
    version = await known_schema_version(conn)  # SchemaTooNew for a newer squall's
    if version == 0:
        return False
    if version < NEWEST_VERSION:  # up to date, it is only read: a read-only role can
        await migrate(conn)
    return True


async def _comparison(url: str, refs: Sequence[str], tolerance: float) -> Comparison:
    async with connection(url) as conn:
        if not await _readable(conn):
            raise RunNotFound("the results database holds no run yet: `squall run` stores each run")
        if len(refs) == 2:
            before_id = await resolve_run(conn, refs[0])
            after_id = await resolve_run(conn, refs[1])
            if before_id == after_id:
                raise RunNotFound(
                    f"{refs[0]!r} and {refs[1]!r} both name run {after_id}; give two different "
                    "runs, or one to compare with the run before it"
                )
        else:
            after_id = await resolve_run(conn, refs[0] if refs else "last")
            found = await previous_run(conn, after_id)
            if found is None:
                raise RunNotFound(
                    f"run {after_id} has no earlier run of the same scenarios to compare with; "
                    "name two runs: squall compare A B"
                )
            before_id = found
        return await compare_stored(conn, before_id, after_id, tolerance=tolerance)


def compare_runs(
    refs: Sequence[str],
    *,
    tolerance: float,
    results_db: str | None,
    results_dir: Path | None,
    config: Path | None = None,
    console: Console | None = None,
    err: Console | None = None,
    cwd: Path | None = None,
) -> int:
    """Compare ``refs`` (two runs, one run with its predecessor, or the last two) on
    ``console``; refusals go to ``err`` (standard error)."""
    console = console or output_console()
    err = err or error_console()
    if len(refs) > 2:
        err.print(f"[red]squall compare: give at most two runs, not {len(refs)}[/red]")
        return EXIT_USAGE
    try:
        where = stored(config, results_db, results_dir, cwd=cwd or Path.cwd())
    except ConfigError as exc:
        err.print(f"[red]squall compare: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    missing = missing_default_cluster(where.results_db, where.results_dir, os.environ)
    if missing is not None:
        err.print(
            f"[red]squall compare: no run stored yet in {literal(missing)}: `squall run` "
            "stores each run[/red]",
            highlight=False,
        )
        return EXIT_USAGE
    try:
        with _database(where) as url:
            comparison = asyncio.run(_comparison(url, refs, tolerance))
    except (RunNotFound, ResultsDbError) as exc:
        err.print(f"[red]squall compare: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    except _UNREACHABLE as exc:
        _print_unreachable(err, "compare", where, exc)
        return EXIT_UNREACHABLE
    console.print(comparison_table(comparison))
    print_comparison(console, comparison)
    if not comparison.compared:
        return EXIT_USAGE
    return EXIT_REGRESSION if comparison.regressions else EXIT_OK
