"""Per-user rate limit on ``user_message`` frames: a token bucket kept in Redis.

One bucket per user for the whole cluster, so opening more sockets or landing
on another worker gains nothing. The Lua script refills by elapsed Redis server
time (one clock for all workers) and takes a token atomically.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from squall.target.errors import RateLimited
from squall.target.ids import UserID
from squall.target.settings import Settings

_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
if rate <= 0 then rate = 0.000001 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return allowed
"""


class RateLimiter:
    """``messages_per_second`` refill, ``message_burst`` capacity, per user."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._prefix = settings.redis_prefix
        self._rate = settings.messages_per_second
        self._burst = settings.message_burst
        self._take = redis.register_script(_TAKE)

    async def allow(self, user: UserID) -> bool:
        """Take one token from ``user``'s bucket; ``False`` when it is empty."""
        allowed = await self._take(
            keys=[f"{self._prefix}:bucket:{user}"], args=[self._rate, self._burst]
        )
        return bool(allowed)

    async def check(self, user: UserID) -> None:
        """:meth:`allow`, raising :class:`RateLimited` when the bucket is empty."""
        if not await self.allow(user):
            raise RateLimited(
                f"user {user!r} exceeded {self._rate:g} messages/s (burst {self._burst}); "
                "slow down and retry (SQUALL_MESSAGES_PER_SECOND, SQUALL_MESSAGE_BURST)"
            )
