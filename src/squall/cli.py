"""The ``squall`` command."""

from __future__ import annotations

from collections.abc import Sequence

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
        app(args=list(argv) if argv is not None else None, standalone_mode=False)
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
    return 0
