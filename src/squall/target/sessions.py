"""Cluster-wide socket bookkeeping in Redis: the per-user socket cap and single-session.

Both are decided by Lua scripts, so concurrent logins on different workers are
serialised by Redis itself:

* **socket cap** — a sorted set per user, member = socket id, score = expiry
  (Redis server time, ms). Claiming drops expired entries, counts, and adds the
  socket only under the cap. Workers refresh their sockets' expiry every
  ``SOCKET_TTL_MS / 3``, adding back an entry that is gone (its key expired while
  Redis was away, or Redis came back empty), so open sockets count again within one
  refresh; a crashed worker's entries expire on their own. (A socket released while a
  refresh is in flight may so count for one more lease.)
* **single session** — a counter per user. A new socket increments it and
  publishes the new generation on the user's kick channel in the same script.
  Each socket subscribes to that channel *before* claiming, so every older
  socket, wherever it lives, hears of every newer one and closes with 4409:
  N concurrent logins leave exactly the one with the highest generation.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from squall.target.hub import kick_channel, session_key
from squall.target.ids import UserID, WebSocketID
from squall.target.settings import Settings

SOCKET_TTL_MS = 30_000

_CLAIM_SOCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_REFRESH_SOCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_CLAIM_SESSION = """
local generation = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], generation)
return generation
"""


class Sessions:
    """The Redis side of socket admission; holds no per-socket state itself."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.redis_prefix
        self._max_sockets = settings.max_sockets_per_user
        self._claim_socket = redis.register_script(_CLAIM_SOCKET)
        self._refresh_socket = redis.register_script(_REFRESH_SOCKET)
        self._claim_session = redis.register_script(_CLAIM_SESSION)

    def _sockets_key(self, user: UserID) -> str:
        return f"{self._prefix}:sockets:{user}"

    async def claim_socket(self, user: UserID, socket_id: WebSocketID) -> bool:
        """Count ``socket_id`` against the user's cap; ``False`` when the cap is reached."""
        allowed = await self._claim_socket(
            keys=[self._sockets_key(user)], args=[socket_id, self._max_sockets, SOCKET_TTL_MS]
        )
        return bool(allowed)

    async def release_socket(self, user: UserID, socket_id: WebSocketID) -> None:
        await self._redis.zrem(self._sockets_key(user), socket_id)

    async def refresh(self, sockets: Iterable[tuple[UserID, WebSocketID]]) -> None:
        """Extend the expiry of live sockets (called periodically by each worker)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user, socket_id in sockets:
                await self._refresh_socket(
                    keys=[self._sockets_key(user)], args=[socket_id, SOCKET_TTL_MS], client=pipe
                )
            await pipe.execute()

    async def open_sockets(self, user: UserID) -> int:
        """Unexpired sockets of ``user`` across the cluster."""
        return int(await self._redis.zcount(self._sockets_key(user), "(0", "+inf"))

    async def claim_session(self, user: UserID) -> int:
        """Become the newest session of ``user``; older sockets are told to close (4409)."""
        generation = await self._claim_session(
            keys=[session_key(self._prefix, user), kick_channel(self._prefix, user)]
        )
        return int(generation)
