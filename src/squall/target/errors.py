"""Errors a client can act on, each with the protocol's ``error.code``."""

from __future__ import annotations

import asyncpg

from squall.target import db, outage, redis_pool


class TargetError(Exception):
    """Base of every error reported to a client as ``{"type": "error", "code": ...}``."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadFrame(TargetError):
    code = "bad_frame"


class UnknownType(TargetError):
    code = "unknown_type"


class FrameTooLarge(TargetError):
    code = "frame_too_large"


class ContentTooLarge(TargetError):
    code = "content_too_large"


class InvalidField(TargetError):
    code = "invalid_field"


class NotFound(TargetError):
    """The thread does not exist *or belongs to someone else*: the answer is the same (a
    ``user_message`` to a free id creates the thread, though, so a taken id can be told)."""

    code = "not_found"


class InsufficientCredits(TargetError):
    code = "insufficient_credits"


class QueueFull(TargetError):
    code = "queue_full"


class RateLimited(TargetError):
    code = "rate_limited"


class TooManySockets(TargetError):
    code = "too_many_sockets"


class StaleFence(TargetError):
    """A write carried a fencing token older than the thread's current one and was rejected."""

    code = "stale_fence"


class ShuttingDown(TargetError):
    code = "shutting_down"


class Unavailable(TargetError):
    """PostgreSQL or Redis could not be reached (restarting, failing over, down)."""

    code = "unavailable"


def unavailable(exc: BaseException) -> Unavailable | None:
    """``exc`` as :class:`Unavailable` when it says a service's connection was lost or
    refused, or None when it is some other error. A PostgreSQL that refused a connection
    because it is full is said to be full: it answers, it has no room."""
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return Unavailable(
            f"PostgreSQL has no free connection ({outage.describe(exc)}); try again shortly"
        )
    if db.connection_lost(exc):
        service = "PostgreSQL"
    elif redis_pool.connection_lost(exc):
        service = "Redis"
    else:
        return None
    return Unavailable(f"{service} is unreachable ({outage.describe(exc)}); try again shortly")
