"""The platform's Redis clients: bounded pools that wait for a free connection.

redis-py's default pool opens connections up to ``max_connections`` and then raises
``MaxConnectionsError: Too many connections``; a burst of sockets arriving at once
(each one claims its socket slot, subscribes, takes a rate-limit token) turns into
failed handshakes and ``internal`` errors. A :class:`redis.asyncio.BlockingConnectionPool`
instead makes the caller wait up to ``redis_pool_timeout_s`` for a connection, so a
burst queues behind a fixed number of connections (``redis_max_connections`` per client).

A pooled connection that the server closed (a Redis restart or failover, a killed client)
fails the first command sent on it; every client here reconnects and sends that command
again, up to :data:`RETRIES` times with short jittered pauses (:func:`retry_policy`), as
redis-py's own clients do by default. A command is sent again only when its connection
broke, so one the server had executed before it vanished may run twice; every command the
platform sends tolerates that (the scripts compare before they write, a doubled
rate-limit take or lock-counter increment only costs a token).

A Redis that stops answering without closing its connections (a paused process, a network
partition, a server stuck in a long command) would hold a command for as long as it stays
silent: command connections wait at most ``redis_command_timeout_s`` for an answer (and for
a new connection), and a command that times out is a broken connection like any other
(sent again, then :func:`connection_lost`). It is set here rather than left to redis-py,
whose default is no timeout before 8.0 and 5 s from 8.0 on.

Pub/sub holds its connection for as long as it listens, so every subscriber gets a
client of its own (:func:`connect_pubsub`) and never takes a connection out of the
shared pool. Its reads wait for messages as long as they say (``get_message(timeout=…)``);
connecting, the handshake, and sending (a re-subscribe after a reconnect, say) wait at most
``redis_command_timeout_s``, so a reconnect to a silent Redis gives up and is tried again.
A connection that goes silent while subscribed is the subscriber's to notice (the hub
pings a quiet one, see :mod:`squall.target.hub`).
"""

from __future__ import annotations

import re
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from squall.target import outage
from squall.target.settings import Settings

#: How often a command is sent again on a new connection after its connection broke.
RETRIES = 3


def retry_policy() -> dict[str, Any]:
    """Pool keywords: reconnect and resend after a broken connection (see above)."""
    backoff = ExponentialWithJitterBackoff(base=0.02, cap=0.5)
    return {
        "retry": Retry(backoff, RETRIES),
        "retry_on_error": [exceptions.ConnectionError, exceptions.TimeoutError],
    }


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis could not be reached (after the retries above), rather
    than that a command failed."""
    return isinstance(exc, exceptions.ConnectionError | exceptions.TimeoutError)


def connect(settings: Settings, *, decode_responses: bool = False) -> aioredis.Redis:
    """A client on ``settings.redis_url`` whose commands wait for one of a bounded set of
    connections instead of failing when all are busy, and for Redis's answer at most
    ``redis_command_timeout_s``."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        socket_timeout=settings.redis_command_timeout_s,
        socket_connect_timeout=settings.redis_command_timeout_s,
        decode_responses=decode_responses,
        **retry_policy(),
    )
    return aioredis.Redis.from_pool(pool)


def connect_pubsub(
    settings: Settings, role: str, *, decode_responses: bool = False
) -> aioredis.Redis:
    """A client with exactly one connection, for one long-lived pub/sub subscriber.

    Call ``.pubsub()`` on it, and ``aclose()`` it after the pub/sub object. The connection
    is named ``{prefix}:{role}`` (``CLIENT LIST`` shows which platform and part holds it).
    Reads wait as long as each ``get_message`` says; connecting and sending wait at most
    ``redis_command_timeout_s`` (see above).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=1,
        timeout=None,
        socket_timeout=settings.redis_command_timeout_s,
        socket_connect_timeout=settings.redis_command_timeout_s,
        decode_responses=decode_responses,
        client_name=client_name(settings, role),
    )
    return aioredis.Redis.from_pool(pool)


def client_name(settings: Settings, role: str) -> str:
    """``{prefix}:{role}`` as ``CLIENT SETNAME`` takes it (no spaces or newlines)."""
    return re.sub(r"\s", "_", f"{settings.redis_prefix}:{role}")


async def wait_reachable(client: aioredis.Redis, what: str, *, within_s: float) -> None:
    """Return once ``client``'s Redis answers ``PING``, waiting up to ``within_s`` while it
    is unreachable (a worker started during a Redis restart); the last connection error is
    raised if it does not come. ``what`` names the waiting work in the log."""
    await outage.retrying(
        what, client.ping, server="Redis", lost=connection_lost, within_s=within_s
    )
