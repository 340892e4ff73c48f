"""``squall target``: run the reference platform and mint its tokens."""

from __future__ import annotations

import math
import os

import typer

from squall.target.settings import Settings, SettingsError, unknown_variables

app = typer.Typer(help="The reference agent platform.", no_args_is_help=True)

#: The longest ``--ttl`` of ``squall target token``: ten years, in seconds.
MAX_TOKEN_TTL_S = 10 * 365 * 86_400


def _settings() -> Settings:
    """The settings of the environment, after a warning for each ``SQUALL_*`` variable
    nothing reads; a refusal is exit code 2."""
    for warning in unknown_variables(os.environ):
        typer.echo(f"squall target: warning: {warning}", err=True)
    try:
        return Settings.from_env()
    except SettingsError as exc:
        typer.echo(f"squall target: {exc}", err=True)
        raise typer.Exit(2) from None


def _ttl(value: float) -> float:
    """``--ttl`` within 1 s and :data:`MAX_TOKEN_TTL_S`; a usage error otherwise."""
    if not (math.isfinite(value) and 1 <= value <= MAX_TOKEN_TTL_S):
        raise typer.BadParameter(
            f"{value!r}: expected a number of seconds from 1 to {MAX_TOKEN_TTL_S} (10 years)"
        )
    return value


@app.command()
def serve(
    workers: int = typer.Option(
        2, "--workers", min=1, metavar="N", help="Worker processes on the one port."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="ADDRESS", help="Address to listen on."
    ),
    port: int = typer.Option(
        8765, "--port", min=0, max=65535, metavar="PORT", help="Port (0: any free one)."
    ),
) -> None:
    """Serve the platform (settings from SQUALL_* environment variables) until SIGTERM."""
    from squall.target.preflight import ServerUnreachable
    from squall.target.server import CannotListen
    from squall.target.server import serve as run_server

    settings = _settings()

    def ready(line: str) -> None:
        typer.echo(line)

    try:
        code = run_server(settings, host=host, port=port, workers=workers, on_ready=ready)
    except SettingsError as exc:  # a key file that cannot be used
        typer.echo(f"squall target: {exc}", err=True)
        raise typer.Exit(2) from None
    except CannotListen as exc:
        typer.echo(f"squall target: {exc.strerror}", err=True)
        raise typer.Exit(3) from None
    except ServerUnreachable as exc:
        typer.echo(f"squall target: {exc}", err=True)
        raise typer.Exit(3) from None
    if code:
        raise typer.Exit(code)


@app.command()
def token(
    user: str = typer.Argument(..., metavar="USER", help="The user id (the token's 'sub')."),
    role: str = typer.Option("user", "--role", metavar="ROLE", help="'user' or 'admin'."),
    ttl: float = typer.Option(
        3600.0,
        "--ttl",
        callback=_ttl,
        metavar="SECONDS",
        help=f"Lifetime in seconds, 1 to {MAX_TOKEN_TTL_S} (10 years).",
    ),
) -> None:
    """Print a token the platform (configured by the same environment) accepts."""
    from squall.target.auth import Authenticator, Role, Unauthorized, mint_token

    try:
        parsed = Role(role)
    except ValueError:
        typer.echo(f"squall target: --role {role!r}: expected 'user' or 'admin'", err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    try:
        minted = mint_token(settings, user, role=parsed, ttl_s=ttl)
        # Checked as the platform checks it: with RS256, against the public key it reads.
        Authenticator(settings).verify(minted)
    except ValueError as exc:  # SettingsError (a key file) included
        typer.echo(f"squall target: {exc}", err=True)
        raise typer.Exit(2) from None
    except Unauthorized as exc:
        typer.echo(
            f"squall target: the platform would refuse this token ({exc}); with RS256, "
            "SQUALL_JWT_PRIVATE_KEY_FILE and SQUALL_JWT_PUBLIC_KEY_FILE must be one key pair",
            err=True,
        )
        raise typer.Exit(2) from None
    typer.echo(minted)
