"""A platform squall started leaves no Redis keys behind on a Redis it shares: they are
deleted when it stops, or by the next start once squall was killed outright."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time

import psutil
import pytest
import redis

from fresh_databases import fresh_database
from squall.services import Endpoints
from squall.services.leftovers import Owner
from squall.services.platform import OWNERS_KEY, start_platform, sweep_prefixes
from squall.services.stack import delete_keys

pytestmark = pytest.mark.integration


def _owners(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(OWNERS_KEY).items()}


def test_stopping_the_platform_deletes_the_keys_of_its_prefix_and_its_owner(
    endpoints: Endpoints,
) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        with fresh_database(endpoints, "squall_keys") as database:
            platform = start_platform(database, endpoints.redis_url, workers=1)
            prefix = platform.redis_prefix
            assert prefix is not None
            # Another platform's key on the same server, whose prefix begins the same.
            neighbour = f"{prefix}x:kept"
            client.set(neighbour, "1")
            try:
                assert [*client.scan_iter(match=f"{prefix}:*")]  # it keeps state there
                assert Owner.from_json(_owners(client)[prefix]) == Owner.current()
                platform.stop()
                assert [*client.scan_iter(match=f"{prefix}:*")] == []
                assert prefix not in _owners(client)
                assert client.get(neighbour) == b"1"
            finally:
                platform.stop()
                client.delete(neighbour)
    finally:
        client.close()


def test_a_prefix_the_caller_chose_is_left_alone(endpoints: Endpoints) -> None:
    with fresh_database(endpoints, "squall_keys") as database:
        platform = start_platform(
            database,
            endpoints.redis_url,
            workers=1,
            settings={"SQUALL_REDIS_PREFIX": "squall-keys-own"},
        )
        platform.stop()
        assert platform.redis_prefix is None
        client = redis.Redis.from_url(endpoints.redis_url)
        try:
            assert [*client.scan_iter(match="squall-keys-own:*")]
        finally:
            delete_keys(endpoints.redis_url, "squall-keys-own")
            client.close()


_KILLED_SQUALL = """
import sys, time
from squall.services.platform import start_platform
platform = start_platform(sys.argv[1], sys.argv[2], workers=1)
print(platform.redis_prefix, flush=True)
time.sleep(120)
"""


def test_the_keys_of_a_squall_killed_outright_are_deleted_by_the_next_start(
    endpoints: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        with fresh_database(endpoints, "squall_keys") as database:
            squall = subprocess.Popen(
                [sys.executable, "-c", _KILLED_SQUALL, database, endpoints.redis_url],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert squall.stdout is not None
                prefix = squall.stdout.readline().strip()
                assert prefix, f"squall exited with {squall.wait(30)} before the platform served"
                assert [*client.scan_iter(match=f"{prefix}:*")]  # its counters, at least
            finally:
                squall.kill()
                squall.wait(30)
            # Its platform died with it; its keys stayed, its owner is gone.
            deadline = time.monotonic() + 30
            while _serves(prefix) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [*client.scan_iter(match=f"{prefix}:*")]
            platform = start_platform(database, endpoints.redis_url, workers=1)
            platform.stop()
            assert [*client.scan_iter(match=f"{prefix}:*")] == []
            assert prefix not in _owners(client)
        redis_url = endpoints.redis_url
        err = capsys.readouterr().err
        deleted = rf"squall: deleted \d+ Redis keys? of prefix {prefix} on {re.escape(redis_url)}: "
        left = rf"left by process {squall.pid} on .*, which is gone$"
        assert re.search(deleted + left, err, re.M)
    finally:
        client.close()


def _serves(prefix: str) -> bool:
    """Whether a platform process of ``prefix`` still runs."""
    for process in psutil.process_iter():
        try:
            if f"SQUALL_REDIS_PREFIX={prefix}" in "\n".join(
                f"{k}={v}" for k, v in process.environ().items()
            ):
                return True
        except psutil.Error:
            continue
    return False


def test_a_sweep_leaves_live_owners_and_prefixes_squall_did_not_name(
    endpoints: Endpoints, gone_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = f"squall-{secrets.token_hex(3)}"
    live = f"squall-{secrets.token_hex(3)}"
    foreign = f"squall-keys-{secrets.token_hex(3)}"  # not a name squall gives
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        client.hset(
            OWNERS_KEY,
            mapping={
                stale: gone_owner.to_json(),
                live: Owner.current().to_json(),
                foreign: gone_owner.to_json(),
            },
        )
        for prefix in (stale, live, foreign):
            client.set(f"{prefix}:counters", "1")
            client.set(f"{prefix}:fence:thread:t1", "7")
        client.set(f"{stale}x:kept", "1")  # begins as the stale prefix does, another's
        sweep_prefixes(endpoints.redis_url)
        assert [*client.scan_iter(match=f"{stale}:*")] == []
        assert client.get(f"{stale}x:kept") == b"1"
        for kept in (live, foreign):
            assert len([*client.scan_iter(match=f"{kept}:*")]) == 2
        assert set(_owners(client)) >= {live, foreign}
        assert stale not in _owners(client)
        err = capsys.readouterr().err
        assert err.count("squall: deleted ") == 1
        assert f"squall: deleted 2 Redis keys of prefix {stale} on " in err
        assert f"left by process {gone_owner.pid} on " in err
    finally:
        for prefix in (stale, live, foreign):
            delete_keys(endpoints.redis_url, prefix)
        client.delete(f"{stale}x:kept")
        client.hdel(OWNERS_KEY, stale, live, foreign)
        client.close()
