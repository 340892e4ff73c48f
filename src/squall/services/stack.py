"""The one way squall obtains PostgreSQL and Redis: given by URL, or embedded.

``DATABASE_URL`` / ``REDIS_URL`` (or explicit arguments) select servers that
already run; anything not given is started from the wheels and stopped when the
:class:`Services` context exits, on Ctrl-C, on SIGTERM (as SystemExit, unless the caller
handles it), or (by the kernel) when squall itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from urllib.parse import urlsplit

import asyncpg
import redis
import redis.asyncio as aioredis

from squall.interrupt import on_sigterm
from squall.loopback import NotLoopback, require_loopback
from squall.refusals import (
    option_refused,
    postgres_refusal,
    reason,
    redis_refusal,
    unreadable_client_file,
)
from squall.services.embedded import EmbeddedPostgres, EmbeddedValkey, port_open
from squall.services.leftovers import Owner, note
from squall.urls import (
    POSTGRES_SCHEMES,
    REDIS_SCHEMES,
    redact,
    url_problem,
    with_database,
)


class ServiceUnavailable(RuntimeError):
    """A service given by URL cannot be used (unreachable, or not a URL of its kind);
    the message names it and the fix."""


Restart = Callable[[], Awaitable[None]]
"""Restart a server squall started; awaited on the event loop's thread, which becomes the
new server's parent (see :func:`squall.services.embedded.restarted`)."""


class ServiceUrlError(ServiceUnavailable):
    """A service URL of the wrong kind: a setting to fix, not a server to start."""


@dataclass(frozen=True)
class Endpoints:
    """Where the services are, and the servers squall started (None: given by URL)."""

    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None = field(default=None, compare=False, repr=False)
    valkey: EmbeddedValkey | None = field(default=None, compare=False, repr=False)

    @property
    def embedded(self) -> tuple[str, ...]:
        """The names of the servers squall started."""
        return tuple(name for name, srv in (("postgres", self.postgres), ("valkey", self.valkey))
                     if srv is not None)  # fmt: skip

    @property
    def postgres_pid(self) -> int | None:
        """The embedded PostgreSQL's postmaster now (for monitoring; a restart changes it)."""
        return None if self.postgres is None else self.postgres.process.pid

    @property
    def redis_pid(self) -> int | None:
        """The embedded Redis server's process now (for monitoring; a restart changes it)."""
        return None if self.valkey is None else self.valkey.process.pid

    @property
    def restart_redis(self) -> Restart | None:
        """Stop the embedded Redis and start an empty one on its port (what a Redis restart
        without persistence does), for fault scenarios; None when Redis was given by URL."""
        return None if self.valkey is None else self.valkey.restart

    @property
    def restart_postgres(self) -> Restart | None:
        """Stop the embedded PostgreSQL and start it again on the same data and port (what
        a restart or failover does to its clients); None when it was given by URL."""
        return None if self.postgres is None else self.postgres.restart


def _require_scheme(url: str, schemes: Sequence[str], setting: str, service: str) -> None:
    """Raise :class:`ServiceUrlError` unless ``url`` names a ``service`` on this machine."""
    problem = url_problem(url, schemes)
    if problem is not None:
        raise ServiceUrlError(
            f"{setting}: {problem}. Fix {setting}, or unset it to use the embedded {service}."
        )
    try:
        require_loopback(url, setting)
    except NotLoopback as exc:
        raise ServiceUrlError(f"{exc}, or unset it to use the embedded {service}.") from None


def _listener(url: str, default_port: int) -> str | None:
    """``host:port`` of ``url`` when something accepts a TCP connection there, else None
    (a Unix socket, a URL of several hosts, nothing listening)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or default_port
    except ValueError:
        return None
    if host is None or "," in parts.netloc:
        return None
    return f"{host}:{port}" if port_open(host, port) else None


def _unreached(service: str, url: str, exc: BaseException, setting: str, unset: str) -> str:
    """The message for ``service`` at ``url`` not answering as one: to be started when
    nothing listens there, else the URL names something else (another server's port, a
    server without TLS for ``sslmode=require``)."""
    listening = _listener(url, 5432 if service == "PostgreSQL" else 6379)
    if listening is None:
        return (
            f"cannot reach {service} at {redact(url)}: {reason(exc)}. "
            f"Start it, fix {setting}, {unset}"
        )
    return (
        f"something listens at {listening}, but did not answer as {service} does "
        f"({reason(exc)}): is it a {service} server, on that port, taking the URL's options? "
        f"Fix {setting}, {unset}"
    )


def _postgres_refusal(url: str, exc: BaseException) -> str:
    """Why PostgreSQL at ``url`` failed to connect, and the fix, as a message."""
    unset = "or unset DATABASE_URL to use the embedded server."
    return postgres_refusal(url, exc, "DATABASE_URL", unset) or _unreached(
        "PostgreSQL", url, exc, "DATABASE_URL", unset
    )


def _redis_refusal(url: str, exc: BaseException) -> str:
    """Why Redis at ``url`` failed to answer, and the fix, as a message."""
    unset = "or unset REDIS_URL to use the embedded server."
    return redis_refusal(url, exc, "REDIS_URL", unset) or _unreached(
        "Redis", url, exc, "REDIS_URL", unset
    )


def _unusable(setting: str, service: str, url: str, exc: ValueError) -> ServiceUrlError:
    """A URL whose options the client library refuses (``?sslmode=bogus``,
    ``?socket_timeout=abc``): a setting to fix, found before anything connects."""
    return ServiceUrlError(
        f"{setting}: {option_refused(service, url, exc)}. Fix {setting}, or unset it to use "
        f"the embedded {service}."
    )


async def _check_postgres(url: str) -> None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ServiceUnavailable(_postgres_refusal(url, exc)) from exc
    except ValueError as exc:  # asyncpg's ClientConfigurationError
        raise _unusable("DATABASE_URL", "PostgreSQL", url, exc) from exc
    await conn.close()


async def _check_redis(url: str) -> None:
    try:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
    except ValueError as exc:
        raise _unusable("REDIS_URL", "Redis", url, exc) from exc
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        raise ServiceUnavailable(_redis_refusal(url, exc)) from exc
    finally:
        await client.aclose()


def create_database(server_url: str, prefix: str = "squall") -> str:
    """Create a fresh, uniquely named database ``prefix_…`` on ``server_url``; return its URL.

    Its comment records its owner, this process; the databases of ``prefix`` whose owner
    is gone (squall was killed before it could drop them) are dropped first (see
    :mod:`squall.services.leftovers`). Raises :class:`ServiceUnavailable` when the server
    refuses (a role without ``CREATEDB``, say), naming the role's server and the fix.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url, timeout=10)
        try:
            await _sweep_databases(conn, prefix, redact(server_url))
            await conn.execute(f'CREATE DATABASE "{name}"')
            await _record_owner(conn, name)
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except PermissionError as exc:
        unreadable = unreadable_client_file(server_url, exc)
        if unreadable is None:
            raise
        raise ServiceUnavailable(unreadable) from exc
    except asyncpg.PostgresError as exc:
        raise ServiceUnavailable(
            f"cannot create a database on {redact(server_url)}: {reason(exc)}. squall gives the "
            "platform a fresh database of its own: grant the role CREATEDB, or unset "
            "DATABASE_URL to use the embedded server."
        ) from exc
    return with_database(server_url, name)


async def _record_owner(conn: asyncpg.Connection, name: str) -> None:
    """Record this process as the owner of database ``name``, in its comment. A database
    whose comment cannot be set is used all the same; only a sweep will not find it."""
    try:
        statement = await conn.fetchval(
            "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
            name,
            Owner.current().to_json(),
        )
        await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        note(f"warning: cannot record the owner of database {name}: {reason(exc)}")


async def _sweep_databases(conn: asyncpg.Connection, prefix: str, server: str) -> None:
    """Drop the databases ``prefix_…`` (as :func:`create_database` names them) of
    ``conn``'s server whose comment names an owner that is gone; one line on standard
    error for each. Never raises: one that cannot be dropped is a warning."""
    named = re.compile(re.escape(prefix) + r"_[0-9a-f]{8}")
    try:
        rows = await conn.fetch(
            "SELECT datname, shobj_description(oid, 'pg_database') AS comment "
            "FROM pg_database WHERE strpos(datname, $1) = 1",
            f"{prefix}_",
        )
    except (asyncpg.PostgresError, OSError) as exc:
        note(f"warning: cannot look for leftover databases on {server}: {reason(exc)}")
        return
    for row in rows:
        name, comment = str(row["datname"]), row["comment"]
        try:
            owner = None if comment is None else Owner.from_json(comment)
            if not named.fullmatch(name) or owner is None or not owner.gone():
                continue
            await _drop(conn, name)
        except Exception as exc:  # a sweep never stops the run that makes it
            note(f"warning: could not sweep database {name} on {server}: {reason(exc)}")
            continue
        note(f"dropped database {name} on {server}: left by {owner.describe()}, which is gone")


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    """Drop database ``name`` if it exists, ending its sessions first: ``WITH (FORCE)``
    from PostgreSQL 13 on, by terminating them before it."""
    if conn.get_server_version().major >= 13:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def drop_database(server_url: str, database_url: str) -> None:
    """Drop the database that ``database_url`` names, ending its sessions first."""
    name = urlsplit(database_url).path.lstrip("/")

    async def drop() -> None:
        conn = await asyncpg.connect(server_url, timeout=10)
        try:
            await _drop(conn, name)
        finally:
            await conn.close()

    asyncio.run(drop())


def redis_client(redis_url: str) -> redis.Redis:
    """A blocking client of ``redis_url`` for squall's own housekeeping (keys of a platform
    it started), which gives up on a server that stops answering."""
    return redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)


def delete_keys(redis_url: str, prefix: str) -> int:
    """Delete every key of ``redis_url`` whose name starts with ``prefix:``; return how many.

    A platform squall started keeps its locks, fencing counters, sessions and metrics
    under a prefix of its own, none of them with a lifetime: without this they would stay
    on a Redis given by ``REDIS_URL`` after every run.
    """
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"
    client = redis_client(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as SystemExit, so ``finally`` blocks stop the servers."""
    raise SystemExit(128 + signum)


def _sigterm_unhandled() -> bool:
    """Whether SIGTERM would end this process without running its ``finally`` blocks (a
    caller that handles or ignores it has its own plan: ``squall run`` treats it as
    Ctrl-C, and exits 130 then)."""
    return signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)


@contextlib.contextmanager
def services(
    database_url: str | None = None,
    redis_url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Endpoints]:
    """Yield :class:`Endpoints` for PostgreSQL and Redis, starting what is not given.

    Explicit arguments win over ``DATABASE_URL`` / ``REDIS_URL`` in ``environ``
    (default: the process environment). Given services are checked for
    reachability and raise :class:`ServiceUnavailable` with the fix.
    """
    env = os.environ if environ is None else environ
    database_url = database_url or env.get("DATABASE_URL") or None
    redis_url = redis_url or env.get("REDIS_URL") or None
    # Both URLs are checked before anything starts: a typo costs no server start-up.
    if database_url is not None:
        _require_scheme(database_url, POSTGRES_SCHEMES, "DATABASE_URL", "PostgreSQL")
    if redis_url is not None:
        _require_scheme(redis_url, REDIS_SCHEMES, "REDIS_URL", "Redis server")
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    with on_sigterm(_exit_on_sigterm) if _sigterm_unhandled() else contextlib.nullcontext():
        try:
            # The given servers are connected to before either embedded one starts.
            if database_url is not None:
                asyncio.run(_check_postgres(database_url))
            if redis_url is not None:
                asyncio.run(_check_redis(redis_url))
            if database_url is None:
                postgres = EmbeddedPostgres.start()
                database_url = postgres.url
            if redis_url is None:
                valkey = EmbeddedValkey.start()
                redis_url = valkey.url
            yield Endpoints(database_url, redis_url, postgres, valkey)
        finally:
            if valkey is not None:
                valkey.stop()
            if postgres is not None:
                postgres.stop()
