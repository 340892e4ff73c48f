from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from squall.loopback import NotLoopback, address_is_loopback, loopback_problem, require_loopback


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.3.4", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1%eth0", False),
        ("192.0.2.1", False),
        ("::ffff:192.0.2.1", False),
        ("0.0.0.0", False),
        ("2001:db8::1", False),
    ],
)
def test_address_is_loopback(address: str, loopback: bool) -> None:
    assert address_is_loopback(address) is loopback


def _no_dns(host: str) -> Sequence[str]:
    raise AssertionError(f"{host} should not need resolving")


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8765/v1/ws",
        "ws://127.9.9.9/",
        "ws://[::1]:8765/",
        "wss://localhost:443/",
        "ws://LOCALHOST/",
        "postgresql://postgres@127.0.0.1:5432/app",
        "postgresql:///app",  # libpq's local default
        "unix:///run/redis.sock",
        "redis://:pw@[::ffff:127.0.0.1]:6379/0",
        "postgresql://u:p@127.0.0.1:5432,[::1]:5433/app",  # libpq's several hosts
        "postgresql:///app?host=/run/postgresql",  # a Unix socket
        "postgresql:///app?host=127.0.0.1,[::1]",
        "postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/app",  # a Unix socket, encoded
    ],
)
def test_urls_on_this_machine_pass_without_resolving(url: str) -> None:
    assert loopback_problem(url, _no_dns) is None
    require_loopback(url, "X", _no_dns)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ws://198.51.100.1:8765/", "host 198.51.100.1 is not a loopback address"),
        ("ws://[2001:db8::1]/", "host 2001:db8::1 is not a loopback address"),
        ("postgresql://u:pw@192.0.2.1/x", "host 192.0.2.1 is not a loopback address"),
        ("ws://0.0.0.0:8765/", "host 0.0.0.0 is not a loopback address"),
        (
            "postgresql://u@127.0.0.1:5432,198.51.100.2:5433/x",
            "host 198.51.100.2 is not a loopback address",
        ),
        ("postgresql:///x?host=198.51.100.3", "host 198.51.100.3 is not a loopback address"),
        (
            "postgresql:///x?host=/run/pg,[2001:db8::3]",
            "host 2001:db8::3 is not a loopback address",
        ),
    ],
)
def test_addresses_off_this_machine_are_named(url: str, problem: str) -> None:
    assert loopback_problem(url, _no_dns) == problem


def test_a_name_must_resolve_to_loopback_only() -> None:
    table = {"box": ["127.0.1.1"], "mixed": ["127.0.0.1", "192.0.2.9"], "far": ["203.0.113.5"]}

    def resolve(host: str) -> Sequence[str]:
        return table[host]

    assert loopback_problem("ws://box:8765/", resolve) is None
    assert loopback_problem("ws://mixed/", resolve) == (
        "host 'mixed' resolves to 192.0.2.9, which is not loopback"
    )
    with pytest.raises(NotLoopback) as caught:
        require_loopback("redis://far:6379/0", "REDIS_URL", resolve)
    assert str(caught.value) == (
        "REDIS_URL: host 'far' resolves to 203.0.113.5, which is not loopback; squall only "
        "connects to this machine (127.0.0.0/8, ::1). Run the service here and point "
        "REDIS_URL at 127.0.0.1 or localhost"
    )


def test_a_name_that_does_not_resolve_is_refused() -> None:
    # It could not be told to be on this machine, and a client library might resolve it
    # otherwise (a later answer, a name it decodes first).
    def resolve(host: str) -> Sequence[str]:
        raise OSError(f"cannot resolve {host}")

    assert loopback_problem("ws://nowhere.invalid/", resolve) == (
        "host 'nowhere.invalid' does not resolve (cannot resolve nowhere.invalid), so "
        "whether it is on this machine cannot be told"
    )
    assert loopback_problem("not a url at all", resolve) is None


def test_a_localhost_subdomain_is_resolved_like_any_name() -> None:
    # Only "localhost" itself is taken on trust: a resolver may answer api.localhost with
    # another machine's address.
    table = {"api.localhost": ["127.0.0.1"], "far.localhost": ["192.0.2.4"]}
    assert loopback_problem("ws://api.localhost:8080/", table.__getitem__) is None
    assert loopback_problem("ws://far.localhost/", table.__getitem__) == (
        "host 'far.localhost' resolves to 192.0.2.4, which is not loopback"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # Percent-encoded: asyncpg and redis-py decode the host before connecting.
        (
            "postgresql://postgres@%31%39%32.0.2.2:47150/x",
            "host 192.0.2.2 is not a loopback address",
        ),
        ("redis://%31%39%32.0.2.2:47150/7", "host 192.0.2.2 is not a loopback address"),
        # A port in ?host=: asyncpg splits it off.
        (
            "postgresql://postgres@/x?host=192.0.2.2:47150",
            "host 192.0.2.2 is not a loopback address",
        ),
        ("postgresql:///x?host=[2001:db8::5]:5432", "host 2001:db8::5 is not a loopback address"),
        # Two @: urlsplit takes the host after the last one, asyncpg the one after the first.
        (
            "postgresql://postgres@[::ffff:192.0.2.2]:47150@127.0.0.1/x",
            "host ::ffff:192.0.2.2 is not a loopback address (as asyncpg reads this URL)",
        ),
        # redis-py takes ?host= when the URL names none.
        ("redis:///7?host=192.0.2.6", "host 192.0.2.6 is not a loopback address"),
    ],
)
def test_hosts_the_client_libraries_read_otherwise_are_judged(url: str, problem: str) -> None:
    assert loopback_problem(url, _no_dns) == problem


@pytest.mark.parametrize("url", ["postgresql://postgres@/postgres", "postgres:///db"])
def test_a_postgres_url_without_a_host_is_judged_by_the_pghost_asyncpg_reads(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "192.0.2.1")
    problem = loopback_problem(url, resolve=_no_dns)
    assert problem is not None
    assert "192.0.2.1" in problem
    assert "PGHOST" in problem
    monkeypatch.setenv("PGHOST", "127.0.0.1,/var/run/postgresql")
    assert loopback_problem(url, resolve=_no_dns) is None
    # A host in the URL wins over PGHOST, as asyncpg takes it.
    monkeypatch.setenv("PGHOST", "192.0.2.1")
    assert loopback_problem("postgresql://postgres@127.0.0.1/postgres", resolve=_no_dns) is None


def test_a_postgres_url_naming_a_service_is_judged_by_the_service_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = tmp_path / "pg_service.conf"
    services.write_text("[away]\nhost=192.0.2.7\n[here]\nhost=127.0.0.1\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.delenv("PGHOST", raising=False)
    problem = loopback_problem("postgresql:///db?service=away", resolve=_no_dns)
    assert problem is not None
    assert "192.0.2.7" in problem
    assert loopback_problem("postgresql:///db?service=here", resolve=_no_dns) is None


def test_a_hostless_postgres_url_is_refused_when_asyncpg_cannot_say_its_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncpg 0.30's private parser took no service arguments: the TypeError was read as
    # "asyncpg refuses the URL", and a PGHOST on another machine went unchecked.
    from asyncpg import connect_utils

    def older_parser(*, dsn: str, host: object, port: object) -> None:
        raise AssertionError("not reached: the arguments do not fit")

    monkeypatch.setattr(connect_utils, "_parse_connect_dsn_and_args", older_parser)
    monkeypatch.setenv("PGHOST", "192.0.2.1")
    problem = loopback_problem("postgresql://postgres@/postgres", resolve=_no_dns)
    assert problem is not None
    assert "name the host in the URL" in problem
    # A URL that names its host does not need asyncpg's parser.
    assert loopback_problem("postgresql://postgres@127.0.0.1/postgres", resolve=_no_dns) is None
