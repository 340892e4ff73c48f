"""The ``squall`` command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="squall",
    help="High-load performance and race-condition testing for real-time backends.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print squall's version."""
    from squall import __version__

    typer.echo(__version__)


@app.command("run")
def run_command(
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="Scenario to run (repeatable); default: all."),
    ] = None,
    scale: Annotated[
        float | None, typer.Option(help="Multiply the scenarios' user counts by this.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Cap each scenario at this many seconds.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="squall.toml or pyproject.toml.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="ws://HOST:PORT/v1/ws of a running platform; default: start one."),
    ] = None,
    jwt_secret: Annotated[
        str | None, typer.Option(help="HS256 secret the --target verifies tokens with.")
    ] = None,
    jwt_secret_file: Annotated[
        Path | None, typer.Option(help="File holding the HS256 secret.")
    ] = None,
    processes: Annotated[
        int | None, typer.Option(help="Load-generator processes (default from config: 1).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Platform worker processes when squall starts it.")
    ] = None,
    results_dir: Annotated[
        Path | None, typer.Option(help="Where results go (default squall-results).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override key.path=value (repeatable)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Live progress while running.")] = True,
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
    """Run the CLI with ``argv`` (default: ``sys.argv``); return the exit code."""
    try:
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
        # Without standalone mode click returns typer.Exit's code instead of raising.
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
