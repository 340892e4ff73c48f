"""Start the reference platform as a child process, the way a user would.

The harness never imports ``squall.target``: it runs ``squall target serve``
in a subprocess with the settings in its environment and waits for
``/healthz``, exactly as it would for any other service.

The platform keeps its Redis state under a fresh key prefix, deleted when it stops. A
squall killed outright (SIGKILL, out of memory) cannot delete it, so the prefix's owner,
the squall that started the platform, is recorded in the hash :data:`OWNERS_KEY` of the
same Redis database (field: the prefix; value: the owner record of
:mod:`squall.services.leftovers`), and each platform start first deletes the keys of the
prefixes whose owner is gone, as the next run drops a killed run's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from squall.refusals import reason
from squall.services.embedded import free_port
from squall.services.leftovers import Owner, note, owned_folder
from squall.services.process import ManagedProcess, spawn, wait_until
from squall.services.stack import delete_keys, redis_client
from squall.target.protocol import READY_LINE
from squall.urls import redact

#: The hash of a Redis database holding the owner of each key prefix squall chose there for
#: a platform (field: the prefix, value: :meth:`Owner.to_json`). Its field goes once the
#: prefix's keys are deleted, and Redis removes the hash with its last field.
OWNERS_KEY = "squall-platform-owners"

#: How squall names a platform's key prefix: only such prefixes are ever swept.
PREFIX_PATTERN = re.compile(r"squall-[0-9a-f]{6}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def record_prefix_owner(redis_url: str, prefix: str) -> None:
    """Record this process as the owner of ``prefix``'s keys on ``redis_url``, before the
    platform makes any; a prefix whose owner cannot be recorded is used all the same (only
    a sweep will not find it)."""
    try:
        client = redis_client(redis_url)
        try:
            client.hset(OWNERS_KEY, prefix, Owner.current().to_json())
        finally:
            client.close()
    except (OSError, ValueError, redis.RedisError) as exc:
        note(f"warning: cannot record the owner of Redis prefix {prefix}: {reason(exc)}")


def delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete the keys ``prefix:*`` of ``redis_url`` and then ``prefix``'s owner record
    (last: keys left by a deletion cut short still have an owner for the next sweep);
    return how many keys were deleted."""
    deleted = delete_keys(redis_url, prefix)
    client = redis_client(redis_url)
    try:
        client.hdel(OWNERS_KEY, prefix)
    finally:
        client.close()
    return deleted


def sweep_prefixes(redis_url: str) -> None:
    """Delete the keys of the platform prefixes on ``redis_url`` (as :func:`start_platform`
    names them) whose recorded owner is gone, one line on standard error for each. Never
    raises: one that cannot be deleted is a warning, and the next sweep tries again."""
    server = redact(redis_url)
    try:
        client = redis_client(redis_url)
        try:
            owners = client.hgetall(OWNERS_KEY)
        finally:
            client.close()
    except Exception as exc:  # a sweep never stops the start that makes it
        note(f"warning: cannot look for leftover Redis keys on {server}: {reason(exc)}")
        return
    for field, record in owners.items():
        prefix = _text(field)
        try:
            owner = Owner.from_json(_text(record))
            if not PREFIX_PATTERN.fullmatch(prefix) or owner is None or not owner.gone():
                continue
            deleted = delete_prefix(redis_url, prefix)
        except Exception as exc:  # a sweep never stops the start that makes it
            note(f"warning: could not sweep Redis prefix {prefix} on {server}: {reason(exc)}")
            continue
        note(
            f"deleted {deleted} Redis key{'s' if deleted != 1 else ''} of prefix {prefix} on "
            f"{server}: left by {owner.describe()}, which is gone"
        )


@dataclass
class RunningPlatform:
    """A reference platform squall started: where it listens and how to sign tokens for it."""

    process: ManagedProcess
    host: str
    port: int
    jwt_secret: str
    workers: int
    #: Holds ``platform.log``; removed on :meth:`stop` unless the caller chose it.
    workdir: Path
    owns_workdir: bool = True
    redis_url: str | None = None
    #: The prefix of the platform's Redis keys when squall chose it (None: the caller's);
    #: its keys (and its owner record) are deleted on :meth:`stop`, as a run's database is
    #: dropped after it, or by the next start once squall was killed (:func:`sweep_prefixes`).
    redis_prefix: str | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop(timeout=30)
        if self.redis_url is not None and self.redis_prefix is not None:
            # Best effort, as dropping the database: Redis may be gone by now.
            with contextlib.suppress(OSError, redis.RedisError):
                delete_prefix(self.redis_url, self.redis_prefix)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _announced(log_path: Path, offset: int) -> bool:
    """Whether ``squall target serve`` printed its ready line (every worker serves) past
    ``offset`` of its log (appended to: an earlier platform's line is before it)."""
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            return READY_LINE.encode() in log.read()
    except OSError:
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed (it could lead off this machine): the 3xx is an error."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


#: Asks this machine only: no proxy from the environment, no redirect followed.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)


def _healthy(url: str) -> bool:
    try:
        with _LOCAL_OPENER.open(url + "/healthz", timeout=1) as response:
            return bool(json.load(response).get("status") == "ok")
    except (OSError, ValueError):
        return False


def start_platform(
    database_url: str,
    redis_url: str,
    *,
    workers: int = 2,
    settings: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 60.0,
    log_dir: Path | None = None,
) -> RunningPlatform:
    """Run ``squall target serve`` against the given services and wait until it answers.

    ``settings`` are extra ``SQUALL_*`` environment variables for the platform
    (see docs/configuration.md); a fresh random JWT secret is used unless given, and a
    fresh Redis key prefix, whose keys :meth:`RunningPlatform.stop` deletes (the prefixes of
    platforms whose squall was killed are swept first, see :func:`sweep_prefixes`). Its log
    goes to ``log_dir/platform.log`` and stays there; without ``log_dir``, to a temporary
    folder removed when the platform stops (a failed start quotes the log's last lines),
    or by the next start once squall was killed (see :mod:`squall.services.leftovers`).
    """
    port = port or free_port(host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQUALL_")}
    env.update(
        {
            "SQUALL_DATABASE_URL": database_url,
            "SQUALL_REDIS_URL": redis_url,
            "SQUALL_REDIS_PREFIX": f"squall-{secrets.token_hex(3)}",
            "SQUALL_JWT_SECRET": secrets.token_urlsafe(32),
        }
    )
    chosen_prefix = env["SQUALL_REDIS_PREFIX"]
    env.update(settings or {})
    owns_prefix = env["SQUALL_REDIS_PREFIX"] == chosen_prefix
    sweep_prefixes(redis_url)
    if owns_prefix:
        record_prefix_owner(redis_url, chosen_prefix)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    workdir = log_dir or owned_folder("squall-platform-")
    argv = [
        sys.executable,
        "-m",
        "squall",
        "target",
        "serve",
        "--workers",
        str(workers),
        "--host",
        host,
        "--port",
        str(port),
    ]
    log_path = workdir / "platform.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    process = spawn("reference platform", argv, log_path=log_path, env=env)
    platform = RunningPlatform(
        process=process,
        host=host,
        port=port,
        jwt_secret=env["SQUALL_JWT_SECRET"],
        workers=workers,
        workdir=workdir,
        owns_workdir=log_dir is None,
        redis_url=redis_url,
        redis_prefix=chosen_prefix if owns_prefix else None,
    )
    try:
        # Every worker serves once the ready line is out; /healthz alone answers as soon
        # as the first one does, and a run started then finds the others still starting.
        wait_until(
            lambda: _announced(log_path, offset) and _healthy(platform.http_url),
            process=process,
            timeout=timeout,
            what=f"every worker serving and answering {platform.http_url}/healthz",
        )
    except BaseException:
        platform.stop()
        raise
    return platform
