"""Server URLs: which scheme each service takes, passwords hidden, databases swapped.

Pure string work, shared by the services, the configuration and the results store.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

#: The URL schemes asyncpg takes for PostgreSQL and redis-py for Redis.
POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def redact(url: str) -> str:
    """``url`` without its password, for messages and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scheme_problem(url: str, schemes: Sequence[str]) -> str | None:
    """Why ``url`` cannot name a server that speaks one of ``schemes`` (a clause for a
    message, the URL's password hidden), or None if it can."""
    try:
        scheme = urlsplit(url).scheme
        shown = repr(redact(url))
    except ValueError as exc:
        return f"the value is not a URL ({exc})"
    if scheme in schemes:
        return None
    found = f"scheme {scheme!r}" if scheme else "no scheme"
    wanted = " or ".join(f"{name}://" for name in schemes)
    return f"{shown} has {found}, where {wanted} is needed"
