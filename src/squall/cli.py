"""The ``squall`` command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from squall.output_streams import forgiving_stdout

app = typer.Typer(
    name="squall",
    help="High-load performance and race-condition testing for real-time backends.",
    no_args_is_help=True,
    add_completion=False,
)

# Options several commands share, declared once.
JwtSecretOption = Annotated[
    str | None,
    typer.Option(metavar="SECRET", help="HS256 secret the --target verifies tokens with."),
]
JwtSecretFileOption = Annotated[
    Path | None,
    typer.Option(metavar="PATH", help="File holding that secret (instead of --jwt-secret)."),
]


def _folder(text: str | Path) -> Path:
    """A folder option; an empty one (an unset variable, say) is a usage error rather
    than the current folder."""
    if isinstance(text, str) and not text.strip():
        raise typer.BadParameter("is empty; give a folder, or leave the option out")
    return Path(text)


ResultsDirOption = Annotated[
    Path | None,
    typer.Option(parser=_folder, metavar="PATH", help="Where results go (default squall-results)."),
]
StoredResultsDbOption = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="PostgreSQL URL of the results database; default: the config's "
        "results.database_url, else as squall run.",
    ),
]
StoredResultsDirOption = Annotated[
    Path | None,
    typer.Option(
        parser=_folder,
        metavar="PATH",
        help="Results dir whose persistent database to read; default: the config's "
        "run.results_dir, else squall-results.",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="PATH", help="squall.toml or pyproject.toml."),
]


def _tolerance(text: str | float) -> float:
    """``--tolerance`` as a fraction; a usage error naming the fix otherwise."""
    from squall.report.compare import ToleranceError, parse_tolerance

    try:
        return parse_tolerance(text)
    except ToleranceError as exc:
        raise typer.BadParameter(str(exc)) from None


ToleranceOption = Annotated[
    float,
    typer.Option(
        parser=_tolerance,
        metavar="CHANGE",
        show_default=False,
        help="How much worse than the baseline a figure may get before it is a regression, "
        "e.g. 10% or 0.1 (default 10%).",
    ),
]


def _print_version(given: bool) -> None:
    if given:
        from squall import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print squall's version and exit (as `squall version`).",
        ),
    ] = False,
) -> None:
    """High-load performance and race-condition testing for real-time backends."""


@app.command()
def version() -> None:
    """Print squall's version."""
    _print_version(True)


@app.command("run")
def run_command(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario", "-s", metavar="NAME", help="Scenario to run (repeatable); default: all."
        ),
    ] = None,
    scale: Annotated[
        float | None,
        typer.Option(metavar="FACTOR", help="Multiply the scenarios' user counts by this."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            help="Cap each load scenario (the race scenarios run to completion): seconds, "
            "or a duration like 500ms, 30s, 5m, 1h.",
            metavar="DURATION",
        ),
    ] = None,
    config: ConfigOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="ws://HOST:PORT/v1/ws of a running platform; default: start one."
        ),
    ] = None,
    jwt_secret: JwtSecretOption = None,
    jwt_secret_file: JwtSecretFileOption = None,
    processes: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Load-generator processes (default: one per core; beside a platform "
            "squall starts, one per core its workers leave, at least one).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(metavar="N", help="Platform worker processes when squall starts it."),
    ] = None,
    results_dir: ResultsDirOption = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Config override key.path=value (repeatable)."
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress while running: a live line on a terminal, a plain line a second "
            "otherwise (default: only on a terminal).",
            show_default=False,
        ),
    ] = None,
    results_db: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="PostgreSQL URL of the results database (or env SQUALL_RESULTS_DB; "
            "'off' stores nothing); default: the database squall_results on DATABASE_URL's "
            "server when that is set, else a persistent one under the results dir.",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            metavar="RUN", help="'last' or a run id: exit 1 when this run regresses against it."
        ),
    ] = None,
    tolerance: ToleranceOption = 0.1,
    adapter: Annotated[
        str | None,
        typer.Option(
            metavar="ADAPTER",
            help="Protocol of the --target: squall (default), echo, or pkg.mod:Class.",
        ),
    ] = None,
) -> None:
    """Run the golden-path suite and judge it against the thresholds."""
    from squall.runner import RunRequest, execute

    request = RunRequest(
        scenarios=tuple(scenario or ()),
        scale=scale,
        duration=duration,
        config=config,
        target=target,
        jwt_secret=jwt_secret,
        jwt_secret_file=jwt_secret_file,
        processes=processes,
        workers=workers,
        results_dir=results_dir,
        overrides=tuple(set_ or ()),
        progress=progress,
        results_db=results_db,
        baseline=baseline,
        tolerance=tolerance,
        adapter=adapter,
    )
    raise typer.Exit(execute(request))


@app.command("history")
def history_command(
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, metavar="N", help="How many runs, newest first.")
    ] = 20,
    results_db: StoredResultsDbOption = None,
    results_dir: StoredResultsDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List stored runs: id, start, scenarios, verdict and key figures."""
    from squall.report.history import history

    raise typer.Exit(
        history(results_db=results_db, results_dir=results_dir, config=config, limit=limit)
    )


@app.command("compare")
def compare_command(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="RUN",
            help="Two run ids (or 'last'); default: the last two of one scenario set.",
        ),
    ] = None,
    tolerance: ToleranceOption = 0.1,
    results_db: StoredResultsDbOption = None,
    results_dir: StoredResultsDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Print two runs' figures side by side; exit 1 when the second regressed."""
    from squall.report.history import compare_runs

    raise typer.Exit(
        compare_runs(
            tuple(runs or ()),
            tolerance=tolerance,
            results_db=results_db,
            results_dir=results_dir,
            config=config,
        )
    )


@app.command(
    "test",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run_tests_command(
    ctx: typer.Context,
    real_services: Annotated[
        bool, typer.Option("--real-services", help="Start or connect the real services.")
    ] = False,
    category: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MARKER",
            help="Test category (a pytest marker, e.g. integration); repeatable: any.",
        ),
    ] = None,
    marker: Annotated[
        list[str] | None,
        typer.Option(metavar="MARKER", help="pytest marker the tests must have; repeatable: all."),
    ] = None,
    test_file: Annotated[
        list[Path] | None,
        typer.Option("--test-file", metavar="PATH", help="Test file or folder; repeatable."),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Only tests whose name matches (pytest -k); repeatable."),
    ] = None,
    scale: Annotated[
        float | None, typer.Option(metavar="FACTOR", help="Multiply the tests' user counts.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(metavar="URL", help="ws:// URL of a running target; default: start one."),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(metavar="ADAPTER", help="Protocol adapter of the target.")
    ] = None,
    jwt_secret: JwtSecretOption = None,
    jwt_secret_file: JwtSecretFileOption = None,
    results_dir: ResultsDirOption = None,
) -> None:
    """Run tests through pytest with the squall plugin; summarise them like `squall run`.

    Arguments after `--` go to pytest unchanged.
    """
    from squall.testrunner import TestRequest, execute

    request = TestRequest(
        real_services=real_services,
        categories=tuple(category or ()),
        markers=tuple(marker or ()),
        test_files=tuple(test_file or ()),
        scenarios=tuple(scenario or ()),
        scale=scale,
        target=target,
        adapter=adapter,
        jwt_secret=jwt_secret,
        jwt_secret_file=jwt_secret_file,
        results_dir=results_dir,
        pytest_args=tuple(ctx.args),
    )
    raise typer.Exit(execute(request))


def _mount_target() -> None:
    # The reference platform ships inside squall but stays independent of the
    # harness: the CLI is its only meeting point.
    try:
        from squall.target.cli import app as target_app
    except ImportError:  # pragma: no cover - target package incomplete
        return
    app.add_typer(target_app, name="target")


_mount_target()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv``); return the exit code. Standard
    output failing (a reader gone, a full device) ends no command:
    :mod:`squall.output_streams`."""
    with forgiving_stdout():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = app(
            args=list(argv) if argv is not None else None, prog_name="squall", standalone_mode=False
        )
        # Without standalone mode click returns typer.Exit's code instead of raising.
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except typer.TyperException as exc:
        # Usage errors (bad option value, unknown command): message and exit code 2.
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        return int(getattr(exc, "exit_code", 2))
