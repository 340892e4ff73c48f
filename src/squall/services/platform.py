"""Start the reference platform as a child process, the way a user would.

The harness never imports ``squall.target``: it runs ``squall target serve``
in a subprocess with the settings in its environment and waits for
``/healthz``, exactly as it would for any other service.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from squall.services.embedded import free_port
from squall.services.leftovers import owned_folder
from squall.services.process import ManagedProcess, spawn, wait_until
from squall.services.stack import delete_keys
from squall.target.protocol import READY_LINE


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
    #: its keys are deleted on :meth:`stop`, as a run's database is dropped after it.
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
                delete_keys(self.redis_url, self.redis_prefix)
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


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
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
    fresh Redis key prefix, whose keys :meth:`RunningPlatform.stop` deletes. Its log
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
        redis_prefix=chosen_prefix if env["SQUALL_REDIS_PREFIX"] == chosen_prefix else None,
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
