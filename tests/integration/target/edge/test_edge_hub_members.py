"""The hub's per-user bookkeeping against real Redis: members by identity, no leftover counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from squall.target.hub import Hub
from squall.target.ids import UserID
from squall.target.settings import Settings

pytestmark = pytest.mark.integration

USERS = 50


@dataclass
class Socket:
    """A member with value equality: two sockets of one user compare equal."""

    user: str
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    @property
    def user_id(self) -> UserID:
        return UserID(self.user)

    @property
    def session(self) -> int | None:
        return None

    def deliver(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.arrived.set()

    def kick(self, generation: int) -> None:
        raise AssertionError(f"no kick expected, got generation {generation}")


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[Hub]:
    settings = Settings(redis_url=redis_url, redis_prefix=f"hub-members-{uuid.uuid4().hex[:10]}")
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    one = Hub(redis, settings)
    await one.start()
    yield one
    await one.stop()
    await redis.aclose()


async def test_detach_removes_that_socket_even_when_another_compares_equal(hub: Hub) -> None:
    first, second = Socket("dora"), Socket("dora")
    assert first == second
    await hub.attach(first)
    await hub.attach(second)
    hub.detach(second)
    hub.detach(second)  # twice: the second call finds nothing to remove
    await hub.publish(UserID("dora"), {"type": "agent_thinking", "thread_id": "t", "seq": 1})
    async with asyncio.timeout(10):
        await first.arrived.wait()
    assert [e["seq"] for e in first.events] == [1]
    assert second.events == []
    assert hub.local_members() == 1


async def test_confirmed_subscriptions_leave_no_counts(hub: Hub) -> None:
    sockets = [Socket(f"user-{i}") for i in range(USERS)]
    await asyncio.gather(*(hub.attach(s) for s in sockets))
    assert repr(hub).startswith(f"<Hub users={USERS} sockets={USERS}")
    assert repr(hub).endswith(" unconfirmed=0>")
    for s in sockets[: USERS // 2]:
        hub.detach(s)
    await asyncio.gather(*(hub.attach(s) for s in sockets[: USERS // 2]))  # re-subscribe
    assert repr(hub).endswith(" unconfirmed=0>")
    assert hub.local_users() == USERS
