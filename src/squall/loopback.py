"""squall connects to this machine only: every URL it is given must name a loopback host.

Load, race and monitoring traffic goes to 127.0.0.0/8 or ::1 and nowhere else, so a
mistyped or copied URL cannot load a machine that did not ask for it. An IP address is
judged as written; ``localhost`` is loopback; any other name is resolved, once per
process, and every address it resolves to must be loopback (one that does not resolve is
refused). A URL without a host (a Unix socket, libpq's local default) stays on this machine
too, unless ``PGHOST`` or a connection service names one for a PostgreSQL URL: that host is
judged too. The hosts a PostgreSQL or Redis client library would connect to are found by
its own parser, besides those the URL shows.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import warnings
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from squall.urls import POSTGRES_SCHEMES, REDIS_SCHEMES, host_parts

#: The addresses squall sends traffic to, as messages name them.
LOOPBACK = "127.0.0.0/8, ::1"


class NotLoopback(ValueError):
    """A URL names a host off this machine; the message names the setting and the fix."""


def address_is_loopback(text: str) -> bool:
    """Whether the IP address ``text`` (an IPv6 zone and IPv4-mapped form allowed) is loopback."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@functools.cache
def _resolve(host: str) -> tuple[str, ...]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def loopback_problem(url: str, resolve: Callable[[str], Sequence[str]] = _resolve) -> str | None:
    """Why ``url`` does not name a loopback host (a clause for a message), or None.

    The hosts judged are the URL's as written (percent-encoding decoded, as the client
    libraries decode it) and, for a PostgreSQL or Redis URL, those its client library's own
    parser finds: asyncpg and redis-py read some URLs otherwise (``?host=HOST:PORT``, two
    ``@``), and a host only they saw would be let through. A name that does not resolve is
    refused: whether it is on this machine cannot be told. A URL that cannot be parsed is
    left to the connection to report, which fails without reaching another machine.
    """
    scheme = url.partition(":")[0].lower()
    try:
        parts = urlsplit(url)
        # libpq takes several hosts, comma-separated, and hosts in the query (?host=…; a
        # path there is a Unix socket): every one of them must be local.
        # A percent-encoded path (%2Fvar%2Frun%2Fpostgresql) is a Unix socket, as in ?host=.
        written = [
            host
            for part in host_parts(parts)
            if part.hostname and _is_host(host := unquote(part.hostname))
        ]
        for value in parse_qs(parts.query).get("host", []):
            written += [_query_host(item) for item in value.split(",") if _is_host(item)]
    except ValueError:
        written = []
    library: list[str] = []
    if scheme in POSTGRES_SCHEMES:
        found = _postgres_hosts(url)
        if found is None and not written:
            return (
                "it names no host, and this asyncpg cannot be asked which one PGHOST or a "
                "connection service file gives it (its parser changed); name the host in the "
                "URL, as in postgresql://USER@127.0.0.1:5432/DATABASE"
            )
        library = found or []
    elif scheme in REDIS_SCHEMES:
        library = _redis_hosts(url)
    for host in written:
        problem = _host_problem(host, resolve)
        if problem is not None:
            return problem
    for host in library:
        problem = _host_problem(host, resolve)
        if problem is not None:
            if scheme in POSTGRES_SCHEMES and not written:
                return f"{problem} (asyncpg takes it from PGHOST or a connection service file)"
            reader = "asyncpg" if scheme in POSTGRES_SCHEMES else "redis-py"
            return f"{problem} (as {reader} reads this URL)"
    return None


def _is_host(item: str) -> bool:
    """Whether a ``?host=`` item names a host (not empty, not a Unix socket's folder)."""
    return bool(item) and not item.startswith("/")


def _query_host(item: str) -> str:
    """The host of a ``?host=`` item: ``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``
    (a bare IPv6 address has more than one colon and no port)."""
    if item.startswith("[") or item.count(":") == 1:
        return urlsplit(f"//{item}").hostname or item
    return item


def _redis_hosts(url: str) -> list[str]:
    """The host redis-py connects to for ``url`` (none for a Unix socket or a URL it
    refuses: its connection refuses that too, reaching no other machine)."""
    from redis.connection import parse_url

    try:
        host = parse_url(url).get("host")  # type: ignore[no-untyped-call]
    except ValueError:
        return []
    return [str(host)] if host else []


def _postgres_hosts(url: str) -> list[str] | None:
    """The hosts asyncpg connects to for ``url``, as its own parser finds them (for a URL
    naming none: those of ``PGHOST`` or a connection service, ``?service=``). Unix sockets
    are left out; a URL asyncpg refuses gives none (the connection reports it, reaching no
    other machine). None when the parser, a private one, takes other arguments than these
    (another asyncpg): the hosts cannot be known, and the URL is not let through."""
    from asyncpg import connect_utils

    try:
        with warnings.catch_warnings():  # about a password file: the connection warns itself
            warnings.simplefilter("ignore")
            addresses, _ = connect_utils._parse_connect_dsn_and_args(
                dsn=url,
                host=None,
                port=None,
                user=None,
                password=None,
                passfile=None,
                database=None,
                ssl=None,
                service=None,
                servicefile=None,
                direct_tls=None,
                server_settings=None,
                target_session_attrs=None,
                krbsrvname=None,
                gsslib=None,
            )
    except (TypeError, AttributeError):
        return None
    except Exception:  # whatever asyncpg refuses, its connect refuses too
        return []
    return [str(address[0]) for address in addresses if isinstance(address, tuple)]


def _host_problem(host: str, resolve: Callable[[str], Sequence[str]]) -> str | None:
    if host.lower() == "localhost":
        return None
    try:
        is_loopback = address_is_loopback(host)
    except ValueError:  # a name, not an address
        try:
            addresses = resolve(host)
        except (OSError, UnicodeError) as exc:
            return (
                f"host {host!r} does not resolve ({exc}), so whether it is on this machine "
                "cannot be told"
            )
        outside = [address for address in addresses if not address_is_loopback(address)]
        if not outside:
            return None
        return f"host {host!r} resolves to {', '.join(outside)}, which is not loopback"
    return None if is_loopback else f"host {host} is not a loopback address"


def connection_refusal(url: str, what: str) -> str | None:
    """The message refusing a connection to ``url`` off this machine, telling to point
    ``what`` (``"the scenario"``, ``"the request"``) elsewhere; None for a loopback URL."""
    problem = loopback_problem(url)
    if problem is None:
        return None
    return (
        f"{url}: {problem}; squall only connects to this machine ({LOOPBACK}): point {what} "
        "at a service on 127.0.0.1 or localhost"
    )


def require_loopback(
    url: str, setting: str, resolve: Callable[[str], Sequence[str]] = _resolve
) -> None:
    """Raise :class:`NotLoopback` naming ``setting`` unless ``url`` names a loopback host."""
    problem = loopback_problem(url, resolve)
    if problem is not None:
        raise NotLoopback(
            f"{setting}: {problem}; squall only connects to this machine ({LOOPBACK}). "
            f"Run the service here and point {setting} at 127.0.0.1 or localhost"
        )
