"""Server URLs: which scheme each service takes, passwords hidden, databases swapped.

Pure string work, shared by the services, the configuration, the results store and the
reference platform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit, urlunsplit

#: The URL schemes asyncpg takes for PostgreSQL and redis-py for Redis.
POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


#: A ``password=`` query parameter, which asyncpg and redis-py both take.
_QUERY_PASSWORD = re.compile(r"(^|&)(password=)[^&]*")


def redact(url: str) -> str:
    """``url`` without its password (in its user part or a ``password=`` query parameter),
    for messages and reports."""
    parts = urlsplit(url)
    query = _QUERY_PASSWORD.sub(r"\1\2***", parts.query)
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def credentials(url: str) -> tuple[str | None, bool]:
    """The user ``url`` names (its user part, else a ``user=`` or ``username=`` query
    parameter; None when neither does) and whether it gives a password (either way)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    user = unquote(parts.username) if parts.username else None
    for name in ("user", "username"):
        if user is None and query.get(name, [""])[0]:
            user = query[name][0]
    return user, bool(parts.password or query.get("password", [""])[0])


def with_credentials(url: str, user: str) -> str:
    """``url`` with ``user:PASSWORD`` as its user part (``PASSWORD`` as written: a
    placeholder for a message showing where the password goes) and no ``password=``
    query parameter."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    query = "&".join(
        item for item in parts.query.split("&") if item and not item.startswith("password=")
    )
    netloc = f"{quote(user, safe='')}:PASSWORD@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def host_parts(parts: SplitResult) -> list[SplitResult]:
    """Each host of a URL (and its port) on its own: libpq takes several, comma-separated,
    ``postgresql://user@h1:5432,h2:5433/db``; other URLs have one."""
    return [urlsplit(f"//{item}") for item in parts.netloc.rpartition("@")[2].split(",")]


def url_problem(url: str, schemes: Sequence[str], *, host_required: bool = False) -> str | None:
    """Why ``url`` cannot name a server that speaks one of ``schemes`` (a clause for a
    message, the URL's password hidden), or None if it can.

    Besides the scheme: every port must be a number in 0..65535 (libpq's ``h1:p1,h2:p2``
    counts host by host), a Redis URL's path must be a database number, and with
    ``host_required`` the URL must name a host.
    """
    try:
        parts = urlsplit(url)
        shown = repr(redact(url))
    except ValueError as exc:
        return f"the value is not a URL ({exc})"
    if parts.scheme not in schemes:
        found = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        wanted = " or ".join(f"{name}://" for name in schemes)
        return f"{shown} has {found}, where {wanted} is needed"
    for host in host_parts(parts):
        try:
            _ = host.port  # raises on a port outside 0..65535
        except ValueError as exc:
            return f"{shown} has a bad port ({exc})"
    if host_required and not parts.hostname:
        return f"{shown} names no host"
    if parts.scheme in ("ws", "wss") and "#" in url:
        # RFC 6455 3: every connect would fail with "fragment identifier is meaningless".
        return f"{shown} has a fragment (#{parts.fragment}), which a WebSocket URL cannot carry"
    if parts.scheme in ("redis", "rediss") and not re.fullmatch(r"/?(\d+)?", parts.path):
        return f"{shown} has path {parts.path!r}, where a database number like /0 is needed"
    return None
