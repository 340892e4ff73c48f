"""squall connects to this machine only: every URL it is given must name a loopback host.

Load, race and monitoring traffic goes to 127.0.0.0/8 or ::1 and nowhere else, so a
mistyped or copied URL cannot load a machine that did not ask for it. An IP address is
judged as written; ``localhost`` (and ``*.localhost``) is loopback; any other name is
resolved, once per process, and every address it resolves to must be loopback. A URL
without a host (a Unix socket, libpq's local default) stays on this machine too, unless
``PGHOST`` or a connection service names one for a PostgreSQL URL: that host is judged too.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import warnings
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from squall.urls import host_parts

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

    A URL that cannot be parsed, or a name that does not resolve, is left to the
    connection to report: it will fail without reaching another machine.
    """
    try:
        parts = urlsplit(url)
        # libpq takes several hosts, comma-separated, and hosts in the query (?host=…; a
        # path there is a Unix socket): every one of them must be local.
        hosts = [host.hostname for host in host_parts(parts)]
        for value in parse_qs(parts.query).get("host", []):
            hosts += [item.strip("[]") for item in value.split(",") if not item.startswith("/")]
    except ValueError:
        return None
    for host in hosts:
        problem = _host_problem(host, resolve)
        if problem is not None:
            return problem
    if parts.scheme in ("postgresql", "postgres") and not any(hosts):
        # No host in the URL: asyncpg then takes one from PGHOST or a ?service= entry.
        hosts_found = _postgres_hosts(url)
        if hosts_found is None:
            return (
                "it names no host, and this asyncpg cannot be asked which one PGHOST or a "
                "connection service file gives it (its parser changed); name the host in the "
                "URL, as in postgresql://USER@127.0.0.1:5432/DATABASE"
            )
        for host in hosts_found:
            problem = _host_problem(host, resolve)
            if problem is not None:
                return f"{problem} (asyncpg takes it from PGHOST or a connection service file)"
    return None


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


def _host_problem(host: str | None, resolve: Callable[[str], Sequence[str]]) -> str | None:
    if not host or host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        is_loopback = address_is_loopback(host)
    except ValueError:  # a name, not an address
        try:
            addresses = resolve(host)
        except OSError:
            return None
        outside = [address for address in addresses if not address_is_loopback(address)]
        if not outside:
            return None
        return f"host {host!r} resolves to {', '.join(outside)}, which is not loopback"
    return None if is_loopback else f"host {host} is not a loopback address"


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
