"""Where the results database lives, chosen once for every command.

In order: ``--results-db URL``; ``SQUALL_RESULTS_DB``; the database
``squall_results`` on the server ``DATABASE_URL`` names (created on first
use); otherwise a persistent embedded cluster under ``<results_dir>/.db/``,
started for the duration of the command (see
:mod:`squall.services.persistent`). ``off`` in place of a URL stores nothing
(``squall run``), and leaves nothing to read (``squall history`` and ``compare``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import asyncpg

from squall.config import RESULTS_DB_OFF
from squall.loopback import NotLoopback, require_loopback
from squall.refusals import option_refused
from squall.services import with_database
from squall.services.persistent import persistent_postgres
from squall.store.migrations import NEWEST_VERSION, ForeignSchema, SchemaTooNew
from squall.urls import POSTGRES_SCHEMES, redact, url_problem

#: Name of the results database on a shared server (DATABASE_URL, or the embedded cluster).
RESULTS_DATABASE = "squall_results"


class ResultsDbError(ValueError):
    """The results database setting names no database to use; the message says which
    setting and the fix."""


def results_db_setting(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The setting in force: ``--results-db``, else ``SQUALL_RESULTS_DB``; None when neither
    is given (then :func:`results_database` picks the default database)."""
    return explicit or environ.get("SQUALL_RESULTS_DB") or None


class Source(enum.Enum):
    """Which database a command uses, in the order it is chosen."""

    #: The setting's URL: ``--results-db`` (or ``[results] database_url``), else
    #: ``SQUALL_RESULTS_DB``.
    SETTING = "setting"
    #: The database :data:`RESULTS_DATABASE` on the server ``DATABASE_URL`` names.
    SERVER = "server"
    #: The persistent embedded cluster in ``<results_dir>/.db``.
    CLUSTER = "cluster"


def source_of(explicit: str | None, environ: Mapping[str, str]) -> tuple[Source, str | None]:
    """Where the results database is, and the URL it is chosen by: the setting's, or
    ``DATABASE_URL`` (a server's); None for the embedded cluster."""
    url = results_db_setting(explicit, environ)
    if url is not None:
        return Source.SETTING, url
    server = environ.get("DATABASE_URL") or None
    if server is not None:
        return Source.SERVER, server
    return Source.CLUSTER, None


def chosen_setting(option: str | None, configured: str | None) -> tuple[str | None, str]:
    """The results database setting a command uses and its name for messages: ``option``
    (``--results-db``) when given, else ``configured`` (``[results] database_url``)."""
    if option is not None:
        return option, "--results-db"
    return configured, "[results] database_url"


def setting_name(explicit: str | None, explicit_name: str = "--results-db") -> str:
    """Where the setting in force came from, for a message: ``explicit`` (named as
    ``explicit_name``: the option, or the config key it was read from) when given, else
    ``SQUALL_RESULTS_DB``."""
    return explicit_name if explicit else "SQUALL_RESULTS_DB"


def check_results_db(
    explicit: str | None,
    environ: Mapping[str, str],
    *,
    off_allowed: bool,
    explicit_name: str = "--results-db",
) -> None:
    """Raise :class:`ResultsDbError` unless the setting in force is a PostgreSQL URL, unset
    (the default database), or ``off`` where ``off_allowed``; the message names
    ``explicit`` as ``explicit_name`` (where it came from)."""
    if explicit is not None and not explicit.strip():
        off = " or 'off'" if off_allowed else ""
        raise ResultsDbError(
            f"{explicit_name} is empty; give a PostgreSQL URL{off}, or leave it out for the "
            "default database"
        )
    url = results_db_setting(explicit, environ)
    if url is None:
        return
    setting = setting_name(explicit, explicit_name)
    if url == RESULTS_DB_OFF:
        if off_allowed:
            return
        raise ResultsDbError(
            f"{setting} is 'off', so there is no results database to read; name one with "
            f"--results-db postgresql://USER@HOST:PORT/DATABASE, or leave {setting} unset "
            "for the default one"
        )
    problem = url_problem(url, POSTGRES_SCHEMES)
    if problem is not None:
        choices = "a PostgreSQL URL, 'off'," if off_allowed else "a PostgreSQL URL"
        raise ResultsDbError(
            f"{setting}: {problem}; give {choices} or leave it unset for the default database"
        )
    try:
        require_loopback(url, setting)
    except NotLoopback as exc:
        raise ResultsDbError(f"{exc}, or leave it unset for the default database") from None


#: How long a results database command waits for a lock another session holds (a squall
#: process stopped mid-write, a transaction left open in psql) before giving up.
LOCK_TIMEOUT_S = 30.0


class ResultsDbBusy(TimeoutError):
    """Another session kept a lock the command needed for longer than the lock timeout."""


class ResultsDbTooNew(Exception):
    """The results database was written by a newer squall (its schema version is beyond
    the newest migration this one knows); the message names the database and the fix."""

    def __init__(self, url: str, version: int) -> None:
        super().__init__(
            f"the results database {redact(url)} is at schema version {version}, newer than "
            f"version {NEWEST_VERSION}, the newest this squall knows: a newer squall wrote it. "
            "Upgrade squall, or store results in another database (--results-db URL, "
            "SQUALL_RESULTS_DB or [results] database_url)"
        )
        self.version = version


#: How long :func:`connection` waits for the server to answer.
CONNECT_TIMEOUT_S = 10


def error_text(exc: BaseException) -> str:
    """``exc``'s message for a "cannot use the results database" line; for one that has
    none (asyncpg's connect timeout: a port where no PostgreSQL answers), what happened."""
    if str(exc):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {CONNECT_TIMEOUT_S} s: is it a PostgreSQL server, and is its "
            "port right?"
        )
    return type(exc).__name__


@contextlib.asynccontextmanager
async def connection(
    url: str, *, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the results database that waits at most ``lock_timeout_s`` for a
    lock (:class:`ResultsDbBusy` then, naming the fix), rather than for ever.
    :class:`ResultsDbTooNew` when a newer squall's schema is found in it."""
    try:
        conn = await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"lock_timeout": f"{round(lock_timeout_s * 1000)}ms"},
        )
    except asyncpg.ClientConfigurationError as exc:  # ?sslmode=bogus: before connecting
        raise ResultsDbError(
            f"the results database URL {option_refused('PostgreSQL', url, exc)}; fix it "
            "(--results-db, SQUALL_RESULTS_DB or [results] database_url)"
        ) from None
    try:
        yield conn
    except asyncpg.LockNotAvailableError:
        raise ResultsDbBusy(
            f"another session kept the results database locked for more than "
            f"{lock_timeout_s:g} s; find it in pg_stat_activity (a squall process stopped "
            "mid-write, or a transaction left open) and end it"
        ) from None
    except SchemaTooNew as exc:
        raise ResultsDbTooNew(url, exc.version) from None
    except ForeignSchema as exc:
        raise ResultsDbError(
            f"the results database {redact(url)} cannot be used: {exc}; store results in a "
            "database of their own (--results-db URL, SQUALL_RESULTS_DB or [results] "
            "database_url)"
        ) from None
    finally:
        await conn.close()


async def _ensure_database(server_url: str, name: str) -> None:
    async with connection(server_url) as conn:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process creating it at the same moment: DuplicateDatabaseError once
            # its creation has committed, a unique violation on pg_database while it runs.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{name}"')


def describe(
    explicit: str | None,
    results_dir: Path,
    environ: Mapping[str, str],
    explicit_name: str = "--results-db",
) -> str:
    """Where :func:`results_database` will look, in words, for messages (``explicit``
    named as ``explicit_name``: the option, or the config key it was read from)."""
    source, _ = source_of(explicit, environ)
    if source is Source.SETTING:
        return setting_name(explicit, explicit_name)
    if source is Source.SERVER:
        return f"database {RESULTS_DATABASE} on DATABASE_URL's server"
    return f"embedded cluster in {results_dir / '.db'}"


def missing_default_cluster(
    explicit: str | None, results_dir: Path, environ: Mapping[str, str]
) -> Path | None:
    """The folder of the default results cluster (``<results_dir>/.db``) when it is the one
    in use and holds no cluster yet: no run was stored there, and a command that only reads
    need not create it (tens of MB). None otherwise, ``explicit`` given (checked where it
    is used, an empty one included)."""
    if explicit is not None or source_of(None, environ)[0] is not Source.CLUSTER:
        return None
    folder = results_dir / ".db"
    return None if (folder / "data" / "PG_VERSION").exists() else folder


@contextlib.contextmanager
def results_database(
    explicit: str | None,
    results_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    explicit_name: str = "--results-db",
) -> Iterator[str]:
    """Yield the URL of the results database, starting the persistent cluster if needed.

    Raises :class:`ResultsDbError` when the setting is ``off`` or not a PostgreSQL URL
    (``explicit`` named as ``explicit_name`` in its message).
    """
    env = os.environ if environ is None else environ
    check_results_db(explicit, env, off_allowed=False, explicit_name=explicit_name)
    source, url = source_of(explicit, env)
    if source is Source.SETTING and url is not None:
        yield url
        return
    if source is Source.SERVER and url is not None:
        asyncio.run(_ensure_database(url, RESULTS_DATABASE))
        yield with_database(url, RESULTS_DATABASE)
        return
    with persistent_postgres(results_dir / ".db" / "data") as cluster:
        asyncio.run(_ensure_database(cluster, RESULTS_DATABASE))
        yield with_database(cluster, RESULTS_DATABASE)
