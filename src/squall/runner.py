"""What ``squall run`` does, from arguments to exit code.

Load the config (exit 2 on a broken one), obtain PostgreSQL and Redis (given or
embedded), start the reference platform unless ``--target`` names one (exit 3
if anything cannot be reached), run the suite, print the summary, write the
result files, and return 0 when every threshold held, 1 otherwise; 2 as well when the
result files could not be written to the results folder (they go to the temporary
folder), 130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from squall.adapters.registry import UnknownAdapter
from squall.adapters.registry import load as load_adapter
from squall.config import Config, ConfigError, OptionOverride, load_config, option_overrides
from squall.fdlimit import few_open_files_note, raise_open_files
from squall.interrupt import deferred_stop, sigterm_as_ctrl_c
from squall.loopback import NotLoopback, require_loopback
from squall.monitor.targets import pids_problem
from squall.report.console import error_console, literal, output_console
from squall.report.files import create_results_dir, new_run_id
from squall.report.publish import EXIT_INTERRUPTED, publish
from squall.report.summary import print_scenario
from squall.scenarios.target import (
    Signing,
    TargetInfo,
    adapter_without_target,
    lacks_signing_key,
    missing_signing_key,
    signing,
)
from squall.services import (
    Endpoints,
    ProcessStartError,
    ServiceUnavailable,
    ServiceUrlError,
    create_database,
    drop_database,
    redact,
    services,
)
from squall.services.platform import RunningPlatform, start_platform
from squall.store.location import ResultsDbError, check_results_db, chosen_setting
from squall.store.results import BaselineError, check_baseline
from squall.suite import (
    SuiteContext,
    SuiteReport,
    TargetUnreachable,
    UnknownScenario,
    check_params,
    check_reachable,
    run_suite,
    select,
    uses_target,
)

#: Written at a Ctrl-C once the suite has ended, while its results are being kept.
FINISHING_NOTE = (
    "squall: stopping what it started and writing the results first (the run has ended)"
)

#: Exit codes of ``squall run``: all held, a threshold failed, usage/config, unreachable.
EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


@dataclass(frozen=True)
class RunRequest:
    """``squall run``'s arguments; None means "from the config file or its default"."""

    scenarios: tuple[str, ...] = ()
    scale: float | None = None
    #: ``--duration``: seconds, or a string like ``"30s"`` / ``"5m"`` (as ``[run] duration``).
    duration: float | str | None = None
    config: Path | None = None
    target: str | None = None
    jwt_secret: str | None = None
    jwt_secret_file: Path | None = None
    processes: int | None = None
    workers: int | None = None
    results_dir: Path | None = None
    overrides: tuple[str, ...] = ()
    #: ``--progress`` / ``--no-progress``; None: only when standard output is a terminal.
    progress: bool | None = None
    #: Results database URL (``--results-db``); None: see ``squall.store.location``.
    results_db: str | None = None
    #: ``--baseline``: ``last`` or a run id to compare with; a regression exits 1.
    baseline: str | None = None
    #: ``--tolerance`` of the baseline comparison, as a fraction (0.10 = 10 %).
    tolerance: float = 0.10
    adapter: str | None = None

    def config_overrides(self) -> list[str]:
        """The command-line options as config overrides, applied after ``--set`` ones."""
        found = list(self.overrides)
        if self.scenarios:
            found.append(OptionOverride("run.scenarios", json.dumps(list(self.scenarios))))
        found += option_overrides(
            numbers=(
                ("run.scale", self.scale),
                ("run.processes", self.processes),
                ("run.workers", self.workers),
            ),
            texts=(
                # As text, numbers too: [run] duration reads "45.5" as it reads "5m".
                ("run.duration", None if self.duration is None else str(self.duration)),
                # Relative to the current folder, as history, compare and test read it,
                # not to the config file's folder as [run] results_dir is.
                (
                    "run.results_dir",
                    None if self.results_dir is None else _absolute(self.results_dir),
                ),
                ("target.url", self.target),
                ("target.adapter", self.adapter),
            ),
        )
        return found


def _absolute(path: Path) -> str:
    return str(path.expanduser().absolute())


def http_url_of(ws_url: str) -> str:
    """``ws://h:p/v1/ws`` → ``http://h:p``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def processes_beside(workers: int, cores: int | None = None) -> int:
    """Load-generator processes beside a target started here with ``workers`` processes.

    One per core the target's workers leave free, at least one: on a 2-core machine
    with 2 platform workers that is one, so generator and target do not fight over the
    cores and the generator's own event-loop lag stays low.
    """
    return max(1, (cores if cores is not None else os.cpu_count() or 1) - workers)


def shared_cores_note(processes: int, workers: int, cores: int | None = None) -> str | None:
    """A warning when more generator processes were asked for than the platform's workers
    leave cores for, or more workers than there are cores: processes then compete for the
    cores, and the latencies measured include that contention."""
    cores = cores if cores is not None else os.cpu_count() or 1
    free = processes_beside(workers, cores)
    if processes > free:
        return (
            f"! {processes} load-generator process(es) beside {workers} platform worker(s) on "
            f"{cores} core(s): they compete for the cores, and the latencies measured include "
            f"that; {free} would leave the workers theirs (the default without --processes)"
        )
    if workers > cores:
        return (
            f"! {workers} platform workers on {cores} core(s): they take turns on the cores "
            f"with each other and the load generator, and the latencies measured include "
            f"that; --workers {cores} or fewer gives each its own"
        )
    return None


@contextlib.contextmanager
def _platform(
    config: Config, database_url: str, redis_url: str, log_dir: Path
) -> Iterator[tuple[RunningPlatform, str]]:
    platform_db = create_database(database_url, prefix="squall_platform")
    try:
        platform = start_platform(
            platform_db,
            redis_url,
            workers=config.run.workers,
            settings=config.platform.env(),
            log_dir=log_dir,
        )
        try:
            yield platform, platform_db
        finally:
            platform.stop()
    finally:
        with contextlib.suppress(Exception):
            drop_database(database_url, platform_db)


@contextlib.contextmanager
def _target(
    config: Config,
    signer: Signing,
    endpoints: Endpoints,
    needs_target: bool,
    folder: Path,
    console: Console,
) -> Iterator[tuple[Config, TargetInfo | None, str | None]]:
    """The target the run talks to: none, the ``--target`` given, or the reference platform
    started here (stopped, its database dropped, on the way out). Yields the configuration
    to run with (the load generator's processes chosen beside the platform's workers), the
    target and the platform's database."""
    if not needs_target:
        unused = "--target is not contacted" if config.target.url else "no platform is started"
        console.print(
            f"{_services_line(endpoints)}; the selected scenarios talk to no target, so {unused}"
        )
        yield config, None, None
        return
    if config.target.url is not None:
        check_reachable(config.target.url, option="--target ([target] url)")
        yield (
            config,
            TargetInfo(
                ws_url=config.target.url,
                http_url=http_url_of(config.target.url),
                jwt_secret=signer.key or "",
                jwt_algorithm=signer.algorithm,
                issuer=config.target.issuer,
                audience=config.target.audience,
                adapter=config.target.adapter,
            ),
            None,
        )
        return
    console.print(_services_line(endpoints))
    processes = config.run.processes or processes_beside(config.run.workers)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, processes=processes))
    with _platform(config, endpoints.database_url, endpoints.redis_url, folder) as (
        platform,
        platform_db,
    ):
        console.print(
            f"squall: reference platform up at {platform.ws_url} "
            f"({platform.workers} workers); load generator: {processes} process(es)"
        )
        note = shared_cores_note(processes, platform.workers)
        if note is not None:
            console.print(f"[yellow]{literal(note)}[/yellow]", highlight=False)
        target = TargetInfo(
            ws_url=platform.ws_url,
            http_url=platform.http_url,
            jwt_secret=platform.jwt_secret,
            pids=(platform.pid,),
        )
        yield config, target, platform_db


def _services_line(endpoints: Endpoints) -> str:
    """Which PostgreSQL and Redis the run uses, and which of them squall started."""
    line = (
        f"squall: PostgreSQL {redact(endpoints.database_url)}, Redis {redact(endpoints.redis_url)}"
    )
    if endpoints.embedded:
        line += f" (embedded: {', '.join(endpoints.embedded)})"
    return line


def execute(request: RunRequest, console: Console | None = None) -> int:
    """Run ``squall run`` and return its exit code. SIGTERM is Ctrl-C throughout (while the
    services start and while the results are written too): squall stops what it started,
    keeps what it has and exits 130."""
    with sigterm_as_ctrl_c():
        return _execute(request, console)


def _execute(request: RunRequest, console: Console | None) -> int:
    console = console or output_console()
    err = error_console()
    try:
        config = load_config(request.config, cwd=Path.cwd(), overrides=request.config_overrides())
        needs_target = uses_target(select(config.run.scenarios))
        check_params(config)
        signer = signing(config.target, request.jwt_secret, request.jwt_secret_file)
        adapter = load_adapter(config.target.adapter)
        if needs_target and config.target.url is not None:
            require_loopback(config.target.url, "--target ([target] url)")
        # Before the run, not after it: a typo here would otherwise surface only when the
        # finished run is stored.
        results_db, results_db_name = chosen_setting(
            request.results_db, config.results.database_url
        )
        check_results_db(results_db, os.environ, off_allowed=True, explicit_name=results_db_name)
        problem = pids_problem(config.monitor.pids)
        if problem is not None:
            raise ConfigError(f"monitor.pids: {problem}")
        baseline = check_baseline(
            request.baseline,
            results_db,
            config.run.results_dir,
            os.environ,
            explicit_name=results_db_name,
        )
    except (
        ConfigError,
        UnknownScenario,
        UnknownAdapter,
        ResultsDbError,
        BaselineError,
        NotLoopback,
    ) as exc:
        err.print(f"[red]squall run: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    no_target = adapter_without_target(config.target) if needs_target else None
    if no_target is not None:
        err.print(f"[red]squall run: {literal(no_target)}[/red]", highlight=False)
        return EXIT_USAGE
    if needs_target and lacks_signing_key(
        config.target, adapter.capabilities.authentication, signer
    ):
        err.print(f"[red]squall run: {literal(missing_signing_key())}[/red]", highlight=False)
        return EXIT_USAGE
    try:
        create_results_dir(config.run.results_dir)
    except ConfigError as exc:
        err.print(f"[red]squall run: {literal(str(exc))}[/red]", highlight=False)
        return EXIT_USAGE
    if config.platform.changed and (not needs_target or config.target.url is not None):
        unused = "--target names the platform" if needs_target else "no platform is started"
        unused_note = f"squall: [platform] settings are not used: {unused}"
        console.print(f"[yellow]{literal(unused_note)}[/yellow]", highlight=False)
    # Raised here, not only before the load: the servers and the platform inherit it.
    few_files = few_open_files_note(raise_open_files()[0])
    if few_files is not None:
        console.print(f"[yellow]{literal(few_files)}[/yellow]", highlight=False)
    run_id = new_run_id()
    folder = config.run.results_dir / run_id
    # Once the suite has returned, a Ctrl-C (or SIGTERM) waits while the platform and the
    # services stop and the result files are written (until squall returns, with the results
    # database off; storing the run may be cut short): raised there, it lost the whole run
    # and left the platform's Redis keys behind.
    finishing = contextlib.ExitStack()
    stopped_late: list[Callable[[], bool]] = []

    def finished(report: SuiteReport) -> SuiteReport:
        stopped_late.append(finishing.enter_context(deferred_stop(FINISHING_NOTE)))
        return report

    with finishing:
        try:
            with (
                services() as endpoints,
                _target(config, signer, endpoints, needs_target, folder, console) as (
                    config,
                    target,
                    platform_db,
                ),
            ):
                report = finished(
                    _run(
                        config,
                        request,
                        target,
                        endpoints,
                        run_id,
                        folder,
                        console,
                        platform_db=platform_db,
                    )
                )
        except (ServiceUnavailable, TargetUnreachable, ProcessStartError) as exc:
            err.print(f"[red]squall run: {literal(str(exc))}[/red]", highlight=False)
            return EXIT_USAGE if isinstance(exc, ServiceUrlError) else EXIT_UNREACHABLE
        code = publish(
            report,
            config,
            console,
            results_db=results_db,
            results_db_name=results_db_name,
            baseline=baseline,
            tolerance=request.tolerance,
            # Storing the run (creating the results cluster, say) may be interrupted again:
            # the files hold it whole.
            files_written=finishing.close,
        )
        if stopped_late and stopped_late[0]():
            console.print(
                "[yellow]interrupted while finishing: the run had ended and its results are "
                "whole[/yellow]"
            )
            return EXIT_INTERRUPTED
        return code


def _run(
    config: Config,
    request: RunRequest,
    target: TargetInfo | None,
    endpoints: Endpoints,
    run_id: str,
    folder: Path,
    console: Console,
    *,
    platform_db: str | None = None,
) -> SuiteReport:
    import uvloop

    ctx = SuiteContext(
        target=target,
        database_url=endpoints.database_url,
        redis_url=endpoints.redis_url,
        services=endpoints,
        tag=f"r{run_id.replace('-', '')}",
        progress=sys.stdout.isatty() if request.progress is None else request.progress,
        results_folder=folder,
        platform_database_url=platform_db,
    )
    snapshot = {
        "scenarios": list(config.run.scenarios),
        "scale": config.run.scale,
        "duration_s": config.run.duration_s,
        "processes": config.run.processes,
        "workers": config.run.workers,
        "target": None if target is None else redact(target.ws_url),
        "adapter": None if target is None else target.adapter,
        "config_file": str(config.source) if config.source else None,
        # The scenarios' own parameters ([scenarios.<name>]), as set: compare names a change.
        "params": {
            name: dict(own.params)
            for name, own in sorted(config.scenarios.items())
            if own.params and (name in config.run.scenarios or not config.run.scenarios)
        },
        # The settings of the platform squall started ([platform]), keys shown as ***.
        "platform": config.platform.shown() if platform_db is not None else None,
    }
    report = SuiteReport(run_id, time.time(), config=snapshot)
    try:
        uvloop.run(
            run_suite(
                config,
                ctx,
                run_id=run_id,
                on_scenario=lambda outcome: print_scenario(console, outcome),
                report=report,
            )
        )
    except KeyboardInterrupt:
        # A Ctrl-C as the suite ended: asyncio's runner cancelled it mid-step and dropped
        # its result; the outcomes it had are in ``report``.
        report.interrupted = True
        report.finished_at = report.finished_at or time.time()
    return report
