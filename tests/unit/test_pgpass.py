"""Which password file gave asyncpg the password for a URL: what it looks up (pure), and
whether a line of a password file (temporary files here) matches it."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.pgpass import PasswordLookup, password_file, password_lookup

HOME = Path("/home/alice")


def _lookup(url: str, **environ: str) -> PasswordLookup | None:
    return password_lookup(url, environ, HOME)


def test_the_url_names_what_is_looked_up_in_the_home_password_file() -> None:
    assert _lookup("postgresql://alice@127.0.0.1:5433/app") == PasswordLookup(
        HOME / ".pgpass", (("127.0.0.1", 5433),), "app", "alice"
    )


@pytest.mark.parametrize(
    ("url", "environ"),
    [
        ("postgresql://alice:pw@127.0.0.1:5433/app", {}),
        ("postgresql://alice@127.0.0.1:5433/app?password=pw", {}),
        ("postgresql://alice@127.0.0.1:5433/app", {"PGPASSWORD": "pw"}),
        ("postgresql://alice@127.0.0.1:5433/app", {"PGPASSWORD": ""}),  # given, empty
    ],
)
def test_a_given_password_means_no_file_is_read(url: str, environ: dict[str, str]) -> None:
    assert password_lookup(url, environ, HOME) is None


def test_no_file_named_and_no_home_means_none_is_read() -> None:
    assert password_lookup("postgresql://alice@127.0.0.1/app", {}, None) is None
    lookup = password_lookup("postgresql://alice@127.0.0.1/app", {"PGPASSFILE": "/p"}, None)
    assert lookup is not None
    assert lookup.passfile == Path("/p")


def test_the_url_parameter_names_the_file_before_pgpassfile() -> None:
    url = "postgresql://alice@127.0.0.1/app"
    by_url = _lookup(f"{url}?passfile=/etc/app.pgpass", PGPASSFILE="/elsewhere")
    by_environ = _lookup(url, PGPASSFILE="/elsewhere")
    assert by_url is not None
    assert by_url.passfile == Path("/etc/app.pgpass")
    assert by_environ is not None
    assert by_environ.passfile == Path("/elsewhere")


def test_every_host_is_looked_up_with_its_own_port_or_the_default() -> None:
    lookup = _lookup("postgresql://alice@db1:5433,[::1],db3/app", PGPORT="6000")
    assert lookup is not None
    assert lookup.servers == (("db1", 5433), ("::1", 6000), ("db3", 6000))
    lookup = _lookup("postgresql://alice@db1,db2/app")
    assert lookup is not None
    assert lookup.servers == (("db1", 5432), ("db2", 5432))


def test_a_url_without_a_host_or_with_a_socket_is_looked_up_as_localhost() -> None:
    for url, environ in [
        ("postgresql:///app?user=alice", {}),
        ("postgresql:///app?user=alice&host=/run/postgresql&port=5433", {}),
        ("postgresql:///app?user=alice", {"PGHOST": "/tmp", "PGPORT": "5433"}),
    ]:
        lookup = password_lookup(url, environ, HOME)
        assert lookup is not None
        assert lookup.servers[0][0] == "localhost"
        assert lookup.user == "alice"
    lookup = _lookup("postgresql:///app?user=alice", PGHOST="db", PGPORT="5433")
    assert lookup is not None
    assert lookup.servers == (("db", 5433),)


def test_user_and_database_come_from_the_url_then_the_environment() -> None:
    lookup = _lookup("postgresql://127.0.0.1/?user=bob&dbname=shop", PGUSER="carol")
    assert lookup is not None
    # An empty path is a database named "" for asyncpg, as written; dbname does not replace it.
    assert (lookup.user, lookup.database) == ("bob", "")
    lookup = _lookup("postgresql://127.0.0.1?dbname=shop", PGUSER="carol")
    assert lookup is not None
    assert (lookup.user, lookup.database) == ("carol", "shop")
    lookup = _lookup("postgresql://127.0.0.1", PGUSER="carol", PGDATABASE="books")
    assert lookup is not None
    assert lookup.database == "books"
    lookup = _lookup("postgresql://carol@127.0.0.1")
    assert lookup is not None
    assert lookup.database == "carol"  # no database named: the user's


def _pgpass(path: Path, *lines: str, mode: int = 0o600) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(mode)
    return path


URL = "postgresql://alice@127.0.0.1:5433/app"


@pytest.mark.parametrize(
    "line",
    [
        "127.0.0.1:5433:app:alice:secret",
        "*:*:*:*:secret",
        "127.0.0.1:*:app:alice:secret",
        "127.0.0.1:5433:app:alice:",  # an empty password is still the file's
    ],
)
def test_a_matching_line_names_the_file(tmp_path: Path, line: str) -> None:
    passfile = _pgpass(tmp_path / "pgpass", "# comment", "", "other:5432:app:alice:x", line)
    assert password_file(URL, {"PGPASSFILE": str(passfile)}, None) == passfile


@pytest.mark.parametrize(
    "line",
    [
        "127.0.0.1:5432:app:alice:secret",  # another port
        "localhost:5433:app:alice:secret",  # another host, as written
        "127.0.0.1:5433:shop:alice:secret",
        "127.0.0.1:5433:app:bob:secret",
        "# 127.0.0.1:5433:app:alice:secret",
    ],
)
def test_no_matching_line_names_no_file(tmp_path: Path, line: str) -> None:
    passfile = _pgpass(tmp_path / "pgpass", line)
    assert password_file(URL, {"PGPASSFILE": str(passfile)}, None) is None


def test_the_home_password_file_is_read_when_none_is_named(tmp_path: Path) -> None:
    passfile = _pgpass(tmp_path / ".pgpass", "*:5433:app:alice:secret")
    assert password_file(URL, {}, tmp_path) == passfile
    assert password_file(URL, {"PGPASSWORD": "pw"}, tmp_path) is None
    assert password_file(URL.replace("alice@", "alice:pw@"), {}, tmp_path) is None


def test_a_file_asyncpg_skips_is_not_named(tmp_path: Path) -> None:
    # Readable by others: asyncpg warns (when it connects) and reads no password from it.
    shared = _pgpass(tmp_path / "shared", "*:*:*:*:secret", mode=0o644)
    assert password_file(URL, {"PGPASSFILE": str(shared)}, None) is None
    assert password_file(URL, {"PGPASSFILE": str(tmp_path)}, None) is None  # a folder
    assert password_file(URL, {"PGPASSFILE": str(tmp_path / "missing")}, None) is None


def test_a_port_asyncpg_cannot_read_names_no_file(tmp_path: Path) -> None:
    passfile = _pgpass(tmp_path / "pgpass", "*:*:*:*:secret")
    environ = {"PGPASSFILE": str(passfile), "PGPORT": "five"}
    assert password_file("postgresql://alice@127.0.0.1/app", environ, None) is None
