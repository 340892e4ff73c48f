"""After a run: show the summary, write every result file, decide the exit code.

Files are written before anything that might fail (a results database that
is down, say), so nothing measured is lost; a results folder that cannot take
them (a full disk, a folder removed or made read-only during the run) gets
them written to the system's temporary folder instead. Then the run is stored
in the results database and, with ``--baseline``, compared with an earlier run: the
files are then written again with the comparison, so a run that regressed fails in
each (``verdict.ok`` false in report.json, a failed ``baseline`` case in junit.xml,
``squall_run_passed 0``), as in the results database and the exit code.

Exit codes: the run's own (0 all thresholds held, 1 one failed, 130
interrupted); 1 as well when ``--baseline`` finds a regression; 2 when the
files could not be written to the results folder; 3 when ``--baseline`` was
asked for but the results database could not be used. A database that fails
without ``--baseline`` only prints a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from rich.console import Console

from squall.config import RESULTS_DB_OFF, Config
from squall.report.compare import DEFAULT_TOLERANCE, Comparison, with_baseline
from squall.report.console import literal
from squall.report.files import fallback_folder, os_problem, write_results
from squall.report.summary import print_summary
from squall.suite import SuiteReport

#: Exit code of a run stopped by Ctrl-C (128 + SIGINT), partial results kept.
EXIT_INTERRUPTED = 130
#: Exit code when a regression against the baseline fails the run.
EXIT_REGRESSION = 1
#: Exit code when ``--baseline`` could not be checked (results database unusable).
EXIT_BASELINE_UNAVAILABLE = 3
#: Exit code when the result files could not be written to the results folder.
EXIT_FILES_UNWRITTEN = 2


def print_comparison(console: Console, comparison: Comparison) -> None:
    """Regressions of ``comparison``, one line each, then a one-line verdict; first, how
    the two runs were set up differently, if they were."""
    if comparison.differences:
        differences = literal("; ".join(comparison.differences))
        console.print(
            f"[yellow]! the runs were set up differently ({differences}): their figures may "
            "not be comparable[/yellow]",
            highlight=False,
        )
    if not comparison.compared:
        console.print(
            f"[red]✗ nothing compared: {literal(comparison.before_id)} and "
            f"{literal(comparison.after_id)} share no figure (runs of other scenarios); compare "
            "runs of the same scenarios[/red]",
            highlight=False,
        )
        return
    regressions = comparison.regressions
    for change in regressions:
        console.print(f"[red]✗ regression {literal(change.describe())}[/red]", highlight=False)
    tol = f"{comparison.tolerance:.0%}"
    if regressions:
        console.print(
            f"[bold red]{len(regressions)} regression(s) against {literal(comparison.before_id)} "
            f"(tolerance {tol})[/bold red]"
        )
    else:
        console.print(
            f"[green]no regression against {literal(comparison.before_id)} "
            f"(tolerance {tol})[/green]"
        )


def publish(
    report: SuiteReport,
    config: Config,
    console: Console,
    *,
    results_db: str | None = None,
    results_db_name: str = "--results-db",
    baseline: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    environ: Mapping[str, str] | None = None,
    files_written: Callable[[], object] | None = None,
) -> int:
    """Print the summary, write the results, store the run; return the run's exit code.
    ``results_db_name`` is where ``results_db`` came from, for messages (the option, or
    ``[results] database_url``); ``files_written`` is called once the files are written and
    before the run is stored (storing may take a while: creating the results cluster); not
    at all when the results database is off."""
    print_summary(console, report)
    deaths = worker_deaths_note(
        config.run.results_dir / report.run_id / PLATFORM_LOG, signalled_workers(report)
    )
    if deaths is not None:
        console.print(f"[yellow]{literal(deaths)}[/yellow]", highlight=False)
    # As report.json will read back: what the other files and the database are made from.
    data = json.loads(json.dumps(report.to_dict(), default=str))
    code = EXIT_INTERRUPTED if report.interrupted else report.verdict.exit_code
    wanted = config.run.results_dir / report.run_id
    folder = write_files(console, data, wanted)
    if folder != wanted:
        code = code or EXIT_FILES_UNWRITTEN
    from squall.store.location import results_db_setting

    env = os.environ if environ is None else environ
    if results_db_setting(results_db, env) == RESULTS_DB_OFF:
        if baseline is not None:
            console.print("[red]--baseline needs the results database, which is off[/red]")
            return code or EXIT_BASELINE_UNAVAILABLE
        return code
    if files_written is not None:
        files_written()
    return _store(
        data, config, console, code, folder, (results_db, results_db_name), baseline, tolerance, env
    )


def write_files(console: Console, data: Mapping[str, object], folder: Path) -> Path | None:
    """Write the run's files into ``folder``, or else into :func:`fallback_folder`; return
    where they are (None: nowhere), having said so."""
    try:
        write_results(data, folder)
    except OSError as exc:
        problem = os_problem(exc)
        fallback = fallback_folder(str(data["run_id"]))
        try:
            write_results(data, fallback)
        except OSError as again:
            console.print(
                f"[red]! the result files could not be written to {literal(folder)} "
                f"({literal(problem)}), nor to {literal(fallback)} ({literal(again)}); free "
                "space, or pass --results-dir a folder you can write to[/red]",
                highlight=False,
            )
            return None
        console.print(
            f"[red]! the result files could not be written to {literal(folder)} "
            f"({literal(problem)}); they are in {literal(fallback)} instead. Free space "
            "there, or pass --results-dir a folder you can write to[/red]",
            highlight=False,
        )
        return fallback
    others = sorted(
        path.name
        for path in folder.iterdir()
        if path.name == PLATFORM_LOG or path.name.endswith(".history.jsonl")
    )
    also = "".join(f", {name}" for name in others)
    console.print(
        f"results: {literal(folder / 'report.json')} (+ report.html, junit.xml, "
        f"metrics.txt{literal(also)})"
    )
    return folder


#: The reference platform's log in a run's folder, when squall started the platform.
PLATFORM_LOG = "platform.log"


def signalled_workers(report: SuiteReport) -> set[int]:
    """The platform workers the run's scenarios stopped or killed on purpose."""
    found: set[int] = set()
    for scenario in report.scenarios:
        result = scenario.result if isinstance(scenario.result, dict) else {}
        pids = result.get("signalled_workers")
        if isinstance(pids, list):
            found.update(pid for pid in pids if isinstance(pid, int))
    return found


def worker_deaths_note(log: Path, on_purpose: Collection[int] = ()) -> str | None:
    """One line when the reference platform's log says a worker died during the run (its
    sockets closed, its runs recovered later): the failures it caused name only their
    effects. Workers a scenario stopped or killed on purpose (``on_purpose``, their PIDs:
    platform_races' restart and crash parts) are left out."""
    from squall.target.protocol import PLATFORM_GAVE_UP, WORKER_DIED_LINE, WORKER_REPLACED

    def died(line: str) -> bool:
        if not line.startswith(WORKER_DIED_LINE):
            return False
        pid = line[len(WORKER_DIED_LINE) :].partition(" ")[0]
        planned = pid.isdigit() and int(pid) in on_purpose
        return not planned and (WORKER_REPLACED in line or PLATFORM_GAVE_UP in line)

    try:
        with log.open(errors="replace") as lines:
            deaths = [line.rstrip("\n") for line in lines if died(line)]
    except OSError:
        return None
    if not deaths:
        return None
    count = f"{len(deaths)} times, first: " if len(deaths) > 1 else ""
    return f"! a reference platform worker died during the run ({count}{deaths[0]}); see {log}"


def _store(
    data: Mapping[str, object],
    config: Config,
    console: Console,
    code: int,
    folder: Path | None,
    setting: tuple[str | None, str],
    baseline: str | None,
    tolerance: float,
    env: Mapping[str, str],
) -> int:
    import asyncpg

    from squall.services import ProcessStartError, redact
    from squall.services.persistent import PersistentLockTimeout
    from squall.store.location import (
        ResultsDbError,
        ResultsDbTooNew,
        describe,
        error_text,
        results_database,
    )
    from squall.store.queries import RunNotFound
    from squall.store.results import store_run

    results_db, results_db_name = setting
    where = describe(results_db, config.run.results_dir, env, results_db_name)
    try:
        with results_database(
            results_db, config.run.results_dir, environ=env, explicit_name=results_db_name
        ) as url:
            outcome = store_run(url, data, baseline=baseline, tolerance=tolerance)
            console.print(f"stored in the results database ({literal(f'{where}: {redact(url)}')})")
    except RunNotFound as exc:
        console.print(f"[red]--baseline {literal(f'{baseline}: {exc}')}[/red]", highlight=False)
        return code or EXIT_BASELINE_UNAVAILABLE
    except (
        OSError,
        asyncpg.PostgresError,
        ProcessStartError,
        PersistentLockTimeout,
        TimeoutError,
        ResultsDbError,
        ResultsDbTooNew,
    ) as exc:
        console.print(
            f"[yellow]! the run was not stored in the results database ({literal(where)}): "
            f"{literal(error_text(exc).rstrip('.'))}. "
            + (
                f"Its files are kept in {literal(folder)}."
                if folder is not None
                else "Its files could not be written either: the summary above is all it left."
            )
            + "[/yellow]",
            highlight=False,
        )
        if baseline is not None:
            console.print("[red]--baseline could not be checked without the results database[/red]")
            return code or EXIT_BASELINE_UNAVAILABLE
        return code
    if outcome is None:
        return code
    if outcome.comparison is None:
        console.print(f"baseline: {outcome.missing}")
        return code
    print_comparison(console, outcome.comparison)
    if folder is not None:
        _rewrite(console, with_baseline(data, outcome.comparison), folder)
    if not outcome.comparison.compared:
        return code or EXIT_BASELINE_UNAVAILABLE
    if outcome.comparison.regressions and code == 0:
        console.print(
            "[bold red]FAILED: every threshold held, but the run regressed against its "
            "baseline[/bold red]"
        )
        return EXIT_REGRESSION
    return code


def _rewrite(console: Console, data: Mapping[str, object], folder: Path) -> None:
    """Write the run's files again, now holding the comparison with its baseline (a run
    that regressed fails in each); the files written before it stay if this fails."""
    try:
        write_results(data, folder)
    except OSError as exc:
        console.print(
            f"[yellow]! the comparison with the baseline could not be added to the files in "
            f"{literal(folder)} ({literal(os_problem(exc))}); they say what the run did "
            "before it[/yellow]",
            highlight=False,
        )
