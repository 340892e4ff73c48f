"""The platform's configuration, read from ``SQUALL_*`` environment variables.

Worker processes are separate interpreters, so the environment is the one
channel every worker reads identically. ``Settings.from_env`` names the variable,
the value and the expected form of any value it cannot parse or use (every numeric
setting has its range, :data:`RANGES`); :func:`unknown_variables` names the
``SQUALL_*`` variables nothing reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args, get_type_hints

from squall.loopback import NotLoopback, require_loopback
from squall.urls import POSTGRES_SCHEMES, REDIS_SCHEMES, url_problem

SessionPolicy = Literal["multi", "single_session"]
WsCompression = Literal["off", "deflate"]
ModelKind = Literal["simulated", "openai"]
JwtAlgorithm = Literal["HS256", "RS256"]

DEV_JWT_SECRET = "squall-dev-secret-change-me"
#: The shortest HS256 secret the platform takes (a key as long as the hash, RFC 7518 3.2);
#: the development default above is exempt, being public anyway.
MIN_JWT_SECRET_BYTES = 32
#: The URL schemes asyncpg and redis-py take for the two servers.
URL_SCHEMES = {"database_url": POSTGRES_SCHEMES, "redis_url": REDIS_SCHEMES}
#: The URL schemes of an OpenAI-compatible server (``SQUALL_OPENAI_BASE_URL``).
HTTP_SCHEMES = ("http", "https")
KNOWN_FAULTS = frozenset({"naive_billing", "no_fencing", "broadcast_events"})
#: The largest integer setting: PostgreSQL's bigint, which credits are stored as and which
#: the counts the database compares against (queue bound, history, retention) are sent as.
MAX_INTEGER = 2**63 - 1
#: The longest shutdown grace, a day: the supervisor waits that long (and a little more)
#: for each worker with poll(2), whose timeout in milliseconds is a C int (about 24 days).
MAX_SHUTDOWN_GRACE_S = 86_400
#: The longest an empty rate-limit bucket may take to refill (``SQUALL_MESSAGE_BURST`` /
#: ``SQUALL_MESSAGES_PER_SECOND``), a year: its Redis key expires after that time, which
#: the rate limiter's script passes to Redis in milliseconds, refused from about 10**17.
MAX_REFILL_S = 365 * 86_400
#: The longest run-lock lifetime, a day: a lock of a worker that died holds its thread that
#: long, and Redis refuses expiries near 2**63 ms.
MAX_LOCK_TTL_MS = 86_400_000
#: ``SQUALL_*`` variables that other parts of squall read: not platform settings, and not
#: misspelt ones (``squall run`` and ``squall history``; the test suite and its Makefile).
OTHER_SQUALL_VARIABLES = frozenset(
    {"SQUALL_RESULTS_DB", "SQUALL_TEST_SCALE", "SQUALL_TEST_TIME_SCALE"}
)
#: Names tried for what are options of ``squall target serve``, not settings.
SERVE_OPTIONS = {"SQUALL_WORKERS": "--workers", "SQUALL_PORT": "--port", "SQUALL_HOST": "--host"}


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


@dataclass(frozen=True)
class Range:
    """The values a numeric setting takes: finite, from ``least`` (``least`` itself only
    when not ``above``) up to ``most``; ``expected`` says so in a refusal."""

    least: float
    expected: str
    above: bool = False
    most: float = math.inf

    def takes(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return (value > self.least if self.above else value >= self.least) and value <= self.most


POSITIVE_INTEGER = Range(1, "a positive integer")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the platform; the env var is ``SQUALL_`` + the upper-cased name."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key and channel, so several platforms can share one server.
    redis_prefix: str = "squall"
    #: Connections per Redis client pool (a worker has two); when all are busy, commands
    #: wait for one (up to ``redis_pool_timeout_s``) instead of failing.
    redis_max_connections: int = 32
    redis_pool_timeout_s: float = 10.0
    #: How long a command (or a new connection) waits for Redis's answer before its
    #: connection counts as lost: a Redis that stops answering without closing (a paused
    #: process, a network partition) fails commands instead of holding them for good.
    redis_command_timeout_s: float = 5.0
    #: PostgreSQL connections per worker; 0 sizes the pool from ``run_concurrency``.
    db_pool_size: int = 0

    jwt_algorithm: JwtAlgorithm = "HS256"
    jwt_secret: str = DEV_JWT_SECRET
    #: PEM public key file for RS256 verification.
    jwt_public_key_file: str = ""
    #: PEM private key file used only by ``squall target token`` for RS256.
    jwt_private_key_file: str = ""
    jwt_issuer: str = "squall"
    jwt_audience: str = "squall-platform"

    max_frame_bytes: int = 65_536
    max_content_chars: int = 16_000
    max_sockets_per_user: int = 32
    #: Token bucket per user for ``user_message`` frames: refill rate and burst.
    messages_per_second: float = 50.0
    message_burst: int = 100
    session_policy: SessionPolicy = "multi"
    #: Outbound frames buffered per socket before it is closed as a slow consumer.
    socket_send_queue: int = 1_000
    #: How long a client may take no data while the platform has data waiting for it
    #: (the kernel's buffers and the transport's full) before its connection is dropped
    #: (0: never; the keepalive ping then drops it within about a minute).
    socket_write_timeout_s: float = 10.0
    #: ``deflate`` negotiates permessage-deflate with clients that offer it (two zlib
    #: streams per such socket, ~37 KB); ``off`` keeps idle sockets at about 12 KB
    #: (docs/runtime.md, "Idle sockets").
    ws_compression: WsCompression = "off"

    #: Runs one worker process executes at once.
    run_concurrency: int = 32
    max_queued_per_thread: int = 100
    run_cost: int = 1
    initial_credits: int = 1_000
    #: Redis run-lock lifetime; a run holding the lock refreshes it while it works.
    lock_ttl_ms: int = 5_000
    #: How long a run, a socket's replay, or a worker starting, waits for a lost PostgreSQL
    #: connection to come back before it fails (0: not at all).
    database_outage_wait_s: float = 30.0
    #: How long a worker starting waits for an unreachable Redis before it fails (0: not at
    #: all); a running worker rides out a Redis outage without it (docs/runtime.md).
    redis_outage_wait_s: float = 30.0
    #: How long a ``user_message`` waits for a lost database connection
    #: before it is answered ``unavailable``: long enough for a killed connection to be
    #: replaced, short enough not to hold the socket's frames through an outage.
    submit_outage_wait_s: float = 2.0
    #: Events kept per thread for ``resume``; older ones are pruned.
    replay_retention_events: int = 10_000

    model: ModelKind = "simulated"
    model_ttft_ms: float = 20.0
    model_tokens_per_second: float = 400.0
    model_answer_tokens: int = 32
    stream_chunk_tokens: int = 16
    context_budget_tokens: int = 2_048
    history_messages: int = 50
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "gpt-4o-mini"
    openai_api_key: str = ""

    shutdown_grace_s: float = 10.0
    #: Dead workers ``squall target serve`` replaces within any
    #: ``worker_restart_window_s``; one more death stops the platform (0: none replaced).
    worker_restarts: int = 5
    worker_restart_window_s: float = 60.0

    #: Comma-separated deliberate defects, for proving that the harness catches
    #: them: ``naive_billing`` (read-modify-write debit), ``no_fencing`` (stale
    #: run writes accepted), ``broadcast_events`` (events to every user's socket).
    #: Never set in production.
    faults: str = ""

    def fault(self, name: str) -> bool:
        """Whether the deliberate defect ``name`` is switched on."""
        return name in {f.strip() for f in self.faults.split(",") if f.strip()}

    @staticmethod
    def env_name(field_name: str) -> str:
        return "SQUALL_" + field_name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings; ``DATABASE_URL`` / ``REDIS_URL`` apply when the SQUALL_ ones are unset."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(cls.env_name(f.name))
            if raw is None and f.name in ("database_url", "redis_url"):
                raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(cls.env_name(f.name), raw, hints[f.name])
        settings = cls(**values)
        settings.validate()
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a worker process."""
        return {self.env_name(f.name): str(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            if not allowed.takes(value):
                raise SettingsError(f"{self.env_name(name)}={value!r}: expected {allowed.expected}")
        refill_s = self.message_burst / self.messages_per_second
        if refill_s > MAX_REFILL_S:
            raise SettingsError(
                f"SQUALL_MESSAGE_BURST={self.message_burst!r} at SQUALL_MESSAGES_PER_SECOND="
                f"{self.messages_per_second!r}: an empty bucket would take {refill_s:g} s to "
                f"refill; expected at most {MAX_REFILL_S} s (a year): raise "
                "SQUALL_MESSAGES_PER_SECOND or lower SQUALL_MESSAGE_BURST"
            )
        unknown = {f.strip() for f in self.faults.split(",") if f.strip()} - KNOWN_FAULTS
        if unknown:
            raise SettingsError(
                f"SQUALL_FAULTS={self.faults!r}: unknown fault(s) {', '.join(sorted(unknown))}; "
                f"expected a comma-separated subset of {', '.join(sorted(KNOWN_FAULTS))}"
            )
        for name, schemes in URL_SCHEMES.items():
            setting = f"{self.env_name(name)} (or {name.upper()} when that is unset)"
            problem = url_problem(getattr(self, name), schemes)
            if problem is not None:
                raise SettingsError(f"{setting}: {problem}")
            _require_loopback(getattr(self, name), setting)
        problem = url_problem(self.openai_base_url, HTTP_SCHEMES, host_required=True)
        if problem is not None:
            raise SettingsError(f"SQUALL_OPENAI_BASE_URL: {problem}")
        _require_loopback(self.openai_base_url, "SQUALL_OPENAI_BASE_URL")
        secret_bytes = len(self.jwt_secret.encode())
        if (
            self.jwt_algorithm == "HS256"
            and self.jwt_secret != DEV_JWT_SECRET
            and secret_bytes < MIN_JWT_SECRET_BYTES
        ):
            raise SettingsError(
                f"SQUALL_JWT_SECRET is {secret_bytes} bytes; HS256 needs at least "
                f"{MIN_JWT_SECRET_BYTES} (RFC 7518, 3.2), or anyone could guess it. Generate "
                "one: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.jwt_algorithm == "RS256" and not self.jwt_public_key_file:
            raise SettingsError(
                "SQUALL_JWT_ALGORITHM=RS256 needs SQUALL_JWT_PUBLIC_KEY_FILE "
                "(a PEM public key) to verify tokens"
            )


#: The range of every numeric setting.
RANGES: dict[str, Range] = {
    "redis_max_connections": POSITIVE_INTEGER,
    "redis_pool_timeout_s": Range(0, "a finite number of seconds > 0", above=True),
    "redis_command_timeout_s": Range(0, "a finite number of seconds > 0", above=True),
    "db_pool_size": Range(0, "0 (sized from SQUALL_RUN_CONCURRENCY) or a positive integer"),
    "max_frame_bytes": POSITIVE_INTEGER,
    "max_content_chars": POSITIVE_INTEGER,
    "max_sockets_per_user": POSITIVE_INTEGER,
    "messages_per_second": Range(0, "a finite number of messages per second > 0", above=True),
    "message_burst": POSITIVE_INTEGER,
    "socket_send_queue": POSITIVE_INTEGER,
    "socket_write_timeout_s": Range(0, "a finite number of seconds, 0 (never) or more"),
    "run_concurrency": POSITIVE_INTEGER,
    "max_queued_per_thread": POSITIVE_INTEGER,
    "run_cost": Range(0, "0 (runs are free) or a positive integer"),
    "initial_credits": Range(0, "0 (a new account starts with none) or a positive integer"),
    "lock_ttl_ms": Range(
        1, f"a number of milliseconds from 1 to {MAX_LOCK_TTL_MS} (a day)", most=MAX_LOCK_TTL_MS
    ),
    "database_outage_wait_s": Range(0, "a finite number of seconds, 0 or more"),
    "redis_outage_wait_s": Range(0, "a finite number of seconds, 0 or more"),
    "submit_outage_wait_s": Range(0, "a finite number of seconds, 0 or more"),
    "replay_retention_events": POSITIVE_INTEGER,
    "model_ttft_ms": Range(0, "a finite number of milliseconds, 0 or more"),
    "model_tokens_per_second": Range(
        0, "a finite number of tokens per second, 0 (no pacing) or more"
    ),
    "model_answer_tokens": POSITIVE_INTEGER,
    "stream_chunk_tokens": POSITIVE_INTEGER,
    "context_budget_tokens": POSITIVE_INTEGER,
    "history_messages": POSITIVE_INTEGER,
    "shutdown_grace_s": Range(
        0,
        f"a number of seconds from 0 to {MAX_SHUTDOWN_GRACE_S} (a day)",
        most=MAX_SHUTDOWN_GRACE_S,
    ),
    "worker_restarts": Range(0, "0 (never replace a dead worker) or a positive integer"),
    "worker_restart_window_s": Range(0, "a finite number of seconds > 0", above=True),
}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``SQUALL_*`` variable of ``environ`` that nothing in squall reads
    (a misspelt setting, say), naming the close setting or the option meant; the values
    are not shown, as they may be secrets."""
    settings = {f.name.upper(): Settings.env_name(f.name) for f in fields(Settings)}
    known = {*settings.values(), *OTHER_SQUALL_VARIABLES}
    warnings = []
    for name in sorted(environ):
        if not name.startswith("SQUALL_") or name in known:
            continue
        if name in SERVE_OPTIONS:
            hint = f"use the {SERVE_OPTIONS[name]} option of squall target serve"
        else:
            # Matched without the prefix every name shares, which would make any two close.
            close = difflib.get_close_matches(name.removeprefix("SQUALL_"), settings, 1, 0.7)
            hint = (
                f"did you mean {settings[close[0]]}?"
                if close
                else "docs/configuration.md lists the settings"
            )
        warnings.append(f"{name} is not a setting of the platform and is ignored; {hint}")
    return warnings


def _parse(name: str, raw: str, hint: Any) -> Any:
    choices = get_args(hint)
    if choices:
        if raw not in choices:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
        return raw
    try:
        if hint is float:
            return float(raw)
        if hint is not int:
            return raw
        value = int(raw)
    except ValueError:
        kind = "an integer" if hint is int else "a number"
        raise SettingsError(f"{name}={raw!r}: expected {kind}") from None
    if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        raise SettingsError(
            f"{name}={raw!r}: expected an integer from {-MAX_INTEGER - 1} to {MAX_INTEGER} "
            "(64 bits)"
        )
    return value


def _require_loopback(url: str, setting: str) -> None:
    """The platform connects to this machine only, as the harness does."""
    try:
        require_loopback(url, setting)
    except NotLoopback as exc:
        raise SettingsError(str(exc)) from None
