"""Before any worker starts: can the platform reach its PostgreSQL and Redis, and serve
the database's schema?

Each worker connects on its own at start-up; when a server is down, every one of
them would fail with a traceback. One check in the parent names the server, the
variable that points at it and the fix instead.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis

from squall.refusals import option_refused, postgres_refusal, reason, redis_refusal
from squall.target.migrations import SchemaRefused, check_schema
from squall.target.settings import Settings, SettingsError

#: Seconds each server gets to answer.
CONNECT_TIMEOUT_S = 5.0


class ServerUnreachable(RuntimeError):
    """A server the platform needs does not answer or refuses it; the message names it and
    the fix."""


def where(url: str) -> str:
    """The server ``url`` points at, as ``host:port`` (or its socket path); no credentials."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return parts.path or url.split("@")[-1]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if parts.port is None else f"{host}:{parts.port}"


def _failure(server: str, url: str, variable: str, exc: BaseException) -> ServerUnreachable:
    """A server that did not answer: start it, or point the variable at one that runs. One
    that answered and refused (credentials, a user, a database) is named as such."""
    fallback = variable.removeprefix("SQUALL_")
    refusal = (postgres_refusal if server == "PostgreSQL" else redis_refusal)(
        url, exc, variable, f"or {fallback} when {variable} is unset."
    )
    if refusal is not None:
        return ServerUnreachable(refusal)
    return ServerUnreachable(
        f"cannot use {server} at {where(url)} ({variable}): {reason(exc)}; start it, or point "
        f"{variable} (or {fallback} when that is unset) at one that runs"
    )


def _refused_option(server: str, url: str, variable: str, exc: ValueError) -> SettingsError:
    """A URL whose options the client library refuses (``?sslmode=bogus``): a setting to
    fix, not a server to start."""
    return SettingsError(f"{variable}={option_refused(server, url, exc)}; fix {variable}")


async def _check(settings: Settings) -> None:
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise _failure("PostgreSQL", settings.database_url, "SQUALL_DATABASE_URL", exc) from exc
    except ValueError as exc:  # asyncpg's ClientConfigurationError
        raise _refused_option(
            "PostgreSQL", settings.database_url, "SQUALL_DATABASE_URL", exc
        ) from exc
    try:
        await check_schema(conn)
    except SchemaRefused as exc:
        raise SettingsError(f"PostgreSQL at {where(settings.database_url)}: {exc}") from None
    finally:
        await conn.close()
    try:
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as exc:
        raise _refused_option("Redis", settings.redis_url, "SQUALL_REDIS_URL", exc) from exc
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        raise _failure("Redis", settings.redis_url, "SQUALL_REDIS_URL", exc) from exc
    finally:
        await client.aclose()


def check_servers(settings: Settings) -> None:
    """Raise :class:`ServerUnreachable` unless both servers answer, :class:`SettingsError`
    when the database's schema is one this platform cannot serve (a newer platform's,
    another application's) or a URL's options are refused."""
    asyncio.run(_check(settings))
