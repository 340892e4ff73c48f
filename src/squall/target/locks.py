"""The per-thread run lock in Redis, with fencing tokens.

``acquire`` takes a token from ``INCR`` on the thread's fence counter (strictly
increasing while it lives: it expires a day after the thread's last acquire, and the
fence the database keeps raises it again) and stores it with ``SET key token NX PX ttl``,
both in one script. The holder
refreshes the lock while it works and releases it with a compare-and-delete, so it can
never delete a lock that expired and was taken by someone else. A lock alone cannot stop
a holder that paused past its TTL from writing; the token does: the holder records it on
the thread row and every write it makes carries it (see ``events.claim_fence``).
"""

from __future__ import annotations

from typing import Any

from squall.target.ids import ThreadID

#: How long a thread's fence counter outlives its last acquire. One kept for good grew
#: Redis by a key per thread ever used; one that expired costs the thread's next run one
#: requeue: its token falls below the fence the database keeps (``threads.fence``), which
#: raises the counter above it again (:meth:`RunLock.raise_floor`).
FENCE_IDLE_MS = 24 * 3600 * 1000

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_ACQUIRE = """
local token = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('SET', KEYS[2], token, 'NX', 'PX', ARGV[1]) then
    return token
end
return 0
"""

_RAISE_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class RunLock:
    """Per-thread locks under ``{prefix}:lock:thread:{id}``; tokens under ``{prefix}:fence:...``."""

    def __init__(self, redis: Any, prefix: str, ttl_ms: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl_ms = ttl_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)
        self._raise_floor = redis.register_script(_RAISE_FLOOR)

    def __repr__(self) -> str:
        return f"RunLock(prefix={self._prefix!r}, ttl_ms={self.ttl_ms})"

    def lock_key(self, thread: ThreadID) -> str:
        return f"{self._prefix}:lock:thread:{thread}"

    def fence_key(self, thread: ThreadID) -> str:
        return f"{self._prefix}:fence:thread:{thread}"

    async def acquire(self, thread: ThreadID) -> int | None:
        """Take the lock; return its fencing token, or ``None`` if another holder has it.

        One script (one round trip): ``INCR`` the counter, then ``SET NX PX`` the lock.
        """
        token = await self._acquire(
            keys=[self.fence_key(thread), self.lock_key(thread)],
            args=[self.ttl_ms, max(FENCE_IDLE_MS, self.ttl_ms)],
        )
        return int(token) if int(token) > 0 else None

    async def refresh(self, thread: ThreadID, token: int) -> bool:
        """Extend the lock by the TTL if ``token`` still holds it; ``False`` means it was lost."""
        return bool(
            await self._refresh(keys=[self.lock_key(thread)], args=[str(token), self.ttl_ms])
        )

    async def release(self, thread: ThreadID, token: int) -> bool:
        """Delete the lock only if ``token`` still holds it."""
        return bool(await self._release(keys=[self.lock_key(thread)], args=[str(token)]))

    async def held(self, thread: ThreadID) -> bool:
        return bool(await self._redis.exists(self.lock_key(thread)))

    async def raise_floor(self, thread: ThreadID, token: int) -> None:
        """Make future tokens exceed ``token`` (after Redis lost its counters, e.g. a flush)."""
        idle_ms = max(FENCE_IDLE_MS, self.ttl_ms)
        await self._raise_floor(keys=[self.fence_key(thread)], args=[str(token), idle_ms])
