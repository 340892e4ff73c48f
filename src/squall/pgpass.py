"""Which password file gave asyncpg the password for a PostgreSQL URL.

When neither the URL nor ``PGPASSWORD`` gives a password, asyncpg reads one from a
password file (the URL's ``passfile`` parameter, else the file ``PGPASSFILE`` names,
else ``~/.pgpass``): the password of its first line matching ``host:port:database:user``.
A server that rejects that password rejected the file's, so a refusal names the file
instead of saying no password was given.

:func:`password_lookup` works out, from the URL and the environment alone (pure), what
asyncpg looks for and where; :func:`password_file` asks asyncpg's own reader whether the
file has a matching line, so the file is parsed, and skipped (not a plain file, readable
by others), exactly as it was when asyncpg connected.
"""

from __future__ import annotations

import getpass
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from asyncpg import connect_utils

#: The password file's name in the home directory, as asyncpg and libpq look for it.
PGPASS = ".pgpass"
#: The port asyncpg connects to when neither the URL nor ``PGPORT`` names one.
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class PasswordLookup:
    """What asyncpg looks up in a password file: the file, and the ``host:port`` pairs
    (one per server the URL names, tried in order), database and user a line must match."""

    passfile: Path
    servers: tuple[tuple[str, int], ...]
    database: str
    user: str


def home_directory() -> Path | None:
    """This account's home directory, where ``.pgpass`` lives; None when it has none."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return None


def _port_list(text: str) -> list[int]:
    return [int(port) for port in text.split(",")]


def _spread(ports: list[int], count: int) -> list[int]:
    """One port for each of ``count`` hosts: a single port serves them all."""
    return ports if len(ports) > 1 else ports * count


def _servers(
    spec: str, ports: list[int], environ: Mapping[str, str], *, unquoted: bool
) -> tuple[list[str], list[int]]:
    """The hosts of a comma-separated host list (``h1:p1,[::1]:p2,/socket/dir``) and their
    ports, as asyncpg's ``_parse_hostlist`` reads them: ``ports`` when given, else each
    host's own, else ``PGPORT``'s (one for all, or one each), else 5432."""
    hosts: list[str] = []
    own: list[str] = []
    for item in spec.split(","):
        if item.startswith("/"):
            host, port = item, ""
        elif item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        hosts.append(unquote(host) if unquoted else host)
        own.append(unquote(port) if unquoted else port)
    if ports:
        return hosts, _spread(ports, len(hosts))
    pgport = environ.get("PGPORT")
    default = _spread(_port_list(pgport) if pgport else [DEFAULT_PORT], len(hosts))
    # More PGPORT ports than hosts (or fewer) fail in asyncpg before it connects.
    pairs = zip(own, default, strict=False)
    return hosts, [int(port) if port else fallback for port, fallback in pairs]


def password_lookup(
    url: str, environ: Mapping[str, str], home: Path | None
) -> PasswordLookup | None:
    """What asyncpg, given ``url`` alone, looks up in a password file, with ``environ`` as
    its environment and ``home`` as the home directory; None when it reads no file: the
    URL or ``PGPASSWORD`` gives a password (an empty ``PGPASSWORD`` too), or no file is
    named and there is no home. Raises ValueError for a port that is not a number (asyncpg
    fails on it before connecting).

    Follows asyncpg's ``connect_utils._parse_connect_dsn_and_args``: the URL's user part,
    hosts and database path, then its ``port``, ``host``, ``dbname`` / ``database``,
    ``user``, ``password`` and ``passfile`` parameters, then ``PGHOST``, ``PGPORT``,
    ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE`` (else the user's name) and ``PGPASSFILE``.
    A URL naming no host (a Unix socket) is looked up as ``localhost``, as is a socket
    directory. Connection service files (a ``service`` parameter) are not followed.
    """
    parts = urlparse(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    auth, at, hostspec = parts.netloc.partition("@")  # at the first "@", as asyncpg splits
    if not at:
        auth, hostspec = "", parts.netloc
    user_part, _, password_part = auth.partition(":")
    hosts: list[str] = []
    ports: list[int] = []
    if hostspec:
        hosts, ports = _servers(hostspec, [], environ, unquoted=True)
    database = unquote(parts.path.removeprefix("/")) if parts.path else None
    user = unquote(user_part) or None
    password = unquote(password_part) or None
    if not ports and "port" in query:
        ports = _port_list(query["port"])
    if not hosts and "host" in query:
        hosts, ports = _servers(query["host"], ports, environ, unquoted=False)
    for name in ("dbname", "database"):
        if database is None and name in query:
            database = query[name]
    user = user or query.get("user")
    password = password if password is not None else query.get("password")
    if not hosts and environ.get("PGHOST"):
        hosts, ports = _servers(environ["PGHOST"], ports, environ, unquoted=False)
    if not ports:
        pgport = environ.get("PGPORT")
        ports = _port_list(pgport) if pgport else [DEFAULT_PORT]
    # A Unix socket's directory is looked up as localhost, as is a URL naming no host.
    hosts = ["localhost" if host.startswith("/") else host for host in hosts] or ["localhost"]
    user = user or environ.get("PGUSER") or getpass.getuser()
    if password is None:
        password = environ.get("PGPASSWORD")
    if password is not None:
        return None
    if database is None:
        database = environ.get("PGDATABASE")
    passfile = query.get("passfile")
    if passfile is None:
        passfile = environ.get("PGPASSFILE")
    if passfile is not None:
        path = Path(passfile)
    elif home is not None:
        path = home / PGPASS
    else:
        return None
    servers = tuple(zip(hosts, _spread(ports, len(hosts)), strict=False))
    return PasswordLookup(path, servers, user if database is None else database, user)


def password_file(url: str, environ: Mapping[str, str], home: Path | None) -> Path | None:
    """The password file asyncpg took the password for ``url`` from (see
    :func:`password_lookup`): the file it reads when a line of it matches, else None."""
    try:
        lookup = password_lookup(url, environ, home)
    except ValueError:
        return None
    if lookup is None:
        return None
    # asyncpg warned about a file it skips when it connected; once is enough.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = connect_utils._read_password_from_pgpass(
            passfile=lookup.passfile,
            hosts=[host for host, _ in lookup.servers],
            ports=[port for _, port in lookup.servers],
            database=lookup.database,
            user=lookup.user,
        )
    return lookup.passfile if found is not None else None
