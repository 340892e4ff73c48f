"""A TTL lock in Redis, shown unsafe when a holder outlives its TTL, and fixed by fencing.

Contenders take the lock with ``SET key token NX PX ttl`` and release it with a
Lua compare-and-delete, so nobody deletes a lock they no longer hold. In the
critical section each writes to a "storage" (a Redis list), pauses, writes
again, and releases.

The interleaving is deterministic, not left to timing: contender ``i`` starts
asking for the lock only after contender ``i − 1`` holds it and has written
once, so they acquire in order. A *stale* contender (chosen by index) then
pauses past its TTL until its successor has acquired the expired lock and
written, and only then makes its second write. Its critical section overlaps
the successor's in real time, which the lock checker names.

With ``fencing`` each acquirer takes a token from ``INCR`` and the storage (a
Lua script) rejects a write whose token is lower than the highest it has seen:
the stale holder's late write is refused and the checker passes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from squall.checks.history import HistoryRecorder, JsonValue, OpType
from squall.checks.locks import check_locks
from squall.checks.verdict import RaceTally, Verdict
from squall.store.history_log import HistoryLog

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

FENCED_WRITE = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '-1')
local token = tonumber(ARGV[1])
if token < highest then
    return highest
end
redis.call('SET', KEYS[1], token)
redis.call('RPUSH', KEYS[2], ARGV[2])
return -1
"""
"""Append ``ARGV[2]`` unless ``ARGV[1]`` is below the highest token seen; returns the
highest token on rejection, -1 on acceptance."""


@dataclass(frozen=True, slots=True)
class RedisLocksReport:
    """What happened on the lock, and the lock checker's verdict."""

    fencing: bool
    contenders: int
    ttl_ms: int
    stale: tuple[int, ...]
    acquired: int
    contended_acquires: int
    writes_accepted: int
    writes_rejected: int
    releases_lost: int
    stored: tuple[str, ...]
    verdict: Verdict
    elapsed_s: float

    @property
    def overlaps(self) -> int:
        return self.verdict.counts.get("overlaps", 0)

    @property
    def tally(self) -> RaceTally:
        """Contended acquires and fenced overlaps are prevented races; unsafe overlaps are not."""
        fenced = self.verdict.counts.get("fenced_overlaps", 0)
        return RaceTally(
            self.contended_acquires + self.overlaps,
            self.contended_acquires + fenced,
            self.verdict.violations,
        )

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "scenario": "redis_locks",
            "fencing": self.fencing,
            "contenders": self.contenders,
            "ttl_ms": self.ttl_ms,
            "stale": list(self.stale),
            "acquired": self.acquired,
            "contended_acquires": self.contended_acquires,
            "writes_accepted": self.writes_accepted,
            "writes_rejected": self.writes_rejected,
            "releases_lost": self.releases_lost,
            "stored": list(self.stored),
            "elapsed_s": self.elapsed_s,
            "tally": self.tally.to_dict(),
            "verdict": self.verdict.to_dict(),
        }


@dataclass
class _Shared:
    """State the contenders hand each other; changed only between awaits."""

    started: list[asyncio.Event]
    wrote: list[asyncio.Event]
    contended: int = 0
    releases_lost: int = 0


def check_params(
    *,
    contenders: int,
    stale: Collection[int],
    ttl_ms: int,
    timeout_s: float,
    **_others: object,
) -> None:
    """Raise ValueError naming a parameter of :func:`run_redis_locks` that is out of range
    (pure: the suite checks a configuration with it before anything runs)."""
    if contenders < 2:
        raise ValueError(f"contenders={contenders}: a lock race needs at least 2")
    if any(not isinstance(i, int) or not 0 <= i < contenders - 1 for i in stale):
        raise ValueError(
            f"stale={list(stale)}: each stale contender needs a successor to take the "
            f"expired lock; pick indices in 0..{contenders - 2}"
        )
    if ttl_ms < 1:
        raise ValueError(f"ttl_ms={ttl_ms}: a lock needs a positive TTL")
    if ttl_ms > timeout_s * 1000 / 2:
        # A stale contender's successor waits out the TTL, then writes, within the stale
        # contender's own wait of timeout_s: with no margin both gave up and the run failed
        # with a bare TimeoutError, its measurements lost.
        raise ValueError(
            f"ttl_ms={ttl_ms} with timeout_s={timeout_s:g}: a successor waits out the TTL "
            f"within timeout_s; pick ttl_ms at most {int(timeout_s * 500)} or raise timeout_s "
            f"to at least {ttl_ms / 500:g}"
        )


async def run_redis_locks(
    redis_url: str,
    *,
    contenders: int = 4,
    ttl_ms: int = 100,
    fencing: bool,
    prefix: str,
    history: HistoryLog | None = None,
    stale: Collection[int] = (0,),
    retry_ms: float = 2.0,
    timeout_s: float = 10.0,
    clock: Callable[[], int] = time.monotonic_ns,
) -> RedisLocksReport:
    """Run ``contenders`` through one lock under keys ``{prefix}:…``.

    ``stale`` holds the indices of contenders that pause past the TTL; each
    needs a successor, so the last index cannot be stale. Every acquire loop
    retries every ``retry_ms`` and gives up after ``timeout_s``; every pause is
    bounded by ``timeout_s`` too.
    """
    chosen = tuple(sorted(set(stale)))
    check_params(contenders=contenders, stale=chosen, ttl_ms=ttl_ms, timeout_s=timeout_s)
    lock_key, fence_key = f"{prefix}:lock", f"{prefix}:fence"
    highest_key, storage_key = f"{prefix}:storage:highest", f"{prefix}:storage"
    recorder = HistoryRecorder(clock=clock, sink=history.append if history else None)
    client = aioredis.Redis.from_url(redis_url)
    shared = _Shared(
        [asyncio.Event() for _ in range(contenders)], [asyncio.Event() for _ in range(contenders)]
    )
    shared.started[0].set()
    began = time.perf_counter()
    try:
        await client.delete(lock_key, fence_key, highest_key, storage_key)
        holder = _Holder(
            client,
            recorder,
            shared,
            lock_key=lock_key,
            fence_key=fence_key if fencing else None,
            storage=(highest_key, storage_key),
            ttl_ms=ttl_ms,
            retry_s=retry_ms / 1000,
            timeout_s=timeout_s,
        )
        async with asyncio.timeout(timeout_s * (contenders + 1)), asyncio.TaskGroup() as group:
            for i in range(contenders):
                group.create_task(holder.run(i, stale=i in chosen, last=i == contenders - 1))
        entries = await client.lrange(storage_key, 0, -1)
        stored = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in entries)
        await client.delete(lock_key, fence_key, highest_key, storage_key)
    finally:
        await client.aclose()
        if history is not None:
            history.flush()
    elapsed = time.perf_counter() - began
    ops = recorder.ops
    writes = [op for op in ops if op.f == "write" and op.type is not OpType.INVOKE]
    return RedisLocksReport(
        fencing,
        contenders,
        ttl_ms,
        chosen,
        sum(1 for op in ops if op.f == "acquire" and op.type is OpType.OK),
        shared.contended,
        sum(1 for op in writes if op.type is OpType.OK),
        sum(1 for op in writes if op.type is OpType.FAIL),
        shared.releases_lost,
        stored,
        check_locks(ops, key=lock_key),
        elapsed,
    )


class _Holder:
    """One contender's life: acquire, write, (pause), write, release, all recorded."""

    def __init__(
        self,
        client: aioredis.Redis,
        recorder: HistoryRecorder,
        shared: _Shared,
        *,
        lock_key: str,
        fence_key: str | None,
        storage: tuple[str, str],
        ttl_ms: int,
        retry_s: float,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.shared = shared
        self.lock_key = lock_key
        self.fence_key = fence_key
        self.storage = storage
        self.ttl_ms = ttl_ms
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.release_script: Any = client.register_script(RELEASE)
        self.write_script: Any = client.register_script(FENCED_WRITE)

    async def run(self, i: int, *, stale: bool, last: bool) -> None:
        process = f"c{i}"
        async with asyncio.timeout(self.timeout_s):
            await self.shared.started[i].wait()
        try:
            acquired = await self._acquire(process)
            if acquired is None:
                return
            lock_token, fence = acquired
            await self._write(process, fence, 1)
        finally:
            self.shared.wrote[i].set()
            if not last:
                self.shared.started[i + 1].set()
        if stale:
            # Deterministic pause past the TTL: until the successor holds the lock and wrote.
            async with asyncio.timeout(self.timeout_s):
                await self.shared.wrote[i + 1].wait()
        else:
            await asyncio.sleep(0)
        await self._write(process, fence, 2)
        await self._release(process, lock_token)

    async def _acquire(self, process: str) -> tuple[str, int | None] | None:
        op = self.recorder.invoke(process, "acquire", {"key": self.lock_key})
        lock_token = secrets.token_hex(8)
        deadline = time.monotonic() + self.timeout_s
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            if await self.client.set(self.lock_key, lock_token, nx=True, px=self.ttl_ms):
                break
            await asyncio.sleep(self.retry_s)
        else:
            self.recorder.fail(op, {"reason": "timeout", "attempts": attempts})
            return None
        self.shared.contended += attempts > 1
        fence = None if self.fence_key is None else int(await self.client.incr(self.fence_key))
        self.recorder.ok(op, {"token": fence, "attempts": attempts})
        return lock_token, fence

    async def _write(self, process: str, fence: int | None, n: int) -> None:
        entry = f"{process}:{n}:token={fence}"
        op = self.recorder.invoke(process, "write", {"key": self.lock_key, "token": fence, "n": n})
        if fence is None:
            await self.client.rpush(self.storage[1], entry)
            self.recorder.ok(op)
            return
        highest = int(await self.write_script(keys=list(self.storage), args=[fence, entry]))
        if highest < 0:
            self.recorder.ok(op)
        else:
            self.recorder.fail(op, {"reason": "stale-token", "highest": highest})

    async def _release(self, process: str, lock_token: str) -> None:
        op = self.recorder.invoke(process, "release", {"key": self.lock_key})
        if int(await self.release_script(keys=[self.lock_key], args=[lock_token])):
            self.recorder.ok(op)
        else:
            self.shared.releases_lost += 1
            self.recorder.fail(op, {"reason": "not-owner"})
