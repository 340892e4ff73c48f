"""The hub, sessions and rate limiter against real Redis, two "workers" in one process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from squall.target.errors import RateLimited
from squall.target.hub import Hub
from squall.target.ids import UserID, WebSocketID
from squall.target.limits import RateLimiter
from squall.target.redis_pool import client_name
from squall.target.sessions import Sessions
from squall.target.settings import Settings

pytestmark = pytest.mark.integration


@dataclass(eq=False)
class Inbox:
    """A local socket reduced to what the hub needs: it records what it is given."""

    user: str
    generation: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    kicks: list[int] = field(default_factory=list)
    resyncs: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def user_id(self) -> UserID:
        return UserID(self.user)

    @property
    def session(self) -> int | None:
        return self.generation

    def deliver(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.arrived.set()

    def kick(self, generation: int) -> None:
        self.kicks.append(generation)
        self.arrived.set()

    def resync(self, since: float) -> None:
        self.resyncs += 1
        self.arrived.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.events) + len(self.kicks) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, redis_prefix=f"edge-unit-{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield redis
    await redis.aclose()


@pytest.fixture
async def hubs(client: aioredis.Redis, settings: Settings) -> AsyncIterator[tuple[Hub, Hub]]:
    one, two = Hub(client, settings), Hub(client, settings)
    await one.start()
    await two.start()
    yield one, two
    await one.stop()
    await two.stop()


def event(thread: str, seq: int) -> dict[str, Any]:
    return {"type": "agent_thinking", "thread_id": thread, "run_id": "r", "seq": seq, "ts": 1.0}


async def test_publish_reaches_the_users_sockets_on_other_hubs_only(
    hubs: tuple[Hub, Hub],
) -> None:
    one, two = hubs
    alice_here, alice_there, bob_there = Inbox("alice"), Inbox("alice"), Inbox("bob")
    await one.attach(alice_here)
    await two.attach(alice_there)
    await two.attach(bob_there)
    for seq in (1, 2, 3):
        await one.publish(UserID("alice"), event("t", seq))
    await alice_here.wait(3)
    await alice_there.wait(3)
    assert [e["seq"] for e in alice_there.events] == [1, 2, 3]
    assert alice_here.events == alice_there.events
    # Bob shares hub two with alice and still got nothing: a marker sent after
    # alice's events arrives first on the same connection, in order.
    await one.publish(UserID("bob"), event("b", 1))
    await bob_there.wait(1)
    assert [e["thread_id"] for e in bob_there.events] == ["b"]
    assert repr(two).startswith("<Hub users=2 sockets=2")


async def test_after_pub_sub_comes_back_every_local_socket_resyncs(
    client: aioredis.Redis, settings: Settings, hubs: tuple[Hub, Hub]
) -> None:
    one, two = hubs
    here, there = Inbox("alice"), Inbox("alice")
    await one.attach(here)
    await two.attach(there)
    # Drop hub one's pub/sub connection (a Redis restart or failover does the same): what is
    # published before it is back never reaches it.
    name = client_name(settings, "hub")
    ids = [c["id"] for c in await client.client_list() if c.get("name") == name]
    assert len(ids) == 2  # one per hub
    await client.client_kill_filter(_id=ids[0])
    await client.client_kill_filter(_id=ids[1])
    await one.publish(UserID("alice"), event("t", 1))
    async with asyncio.timeout(10):
        for inbox in (here, there):
            while not inbox.resyncs:
                inbox.arrived.clear()
                await inbox.arrived.wait()
    assert (here.resyncs, there.resyncs, one.resyncs, two.resyncs) == (1, 1, 1, 1)
    assert here.events == there.events == []  # lost to pub/sub: the sockets replay it
    # Subscribed again: live delivery goes on.
    await one.publish(UserID("alice"), event("t", 2))
    await here.wait(1)
    assert [e["seq"] for e in here.events] == [2]


async def test_detached_socket_receives_nothing_and_channel_is_reusable(
    hubs: tuple[Hub, Hub],
) -> None:
    one, two = hubs
    first = Inbox("carol")
    await two.attach(first)
    two.detach(first)
    second = Inbox("carol")
    await two.attach(second)  # re-subscribes while the unsubscribe may be in flight
    await one.publish(UserID("carol"), event("t", 1))
    await second.wait(1)
    assert first.events == []
    assert two.local_users() == 1


async def test_broadcast_fault_leaks_to_every_local_socket(
    client: aioredis.Redis, settings: Settings
) -> None:
    faulty = Hub(client, settings.replace(faults="broadcast_events"))
    honest = Hub(client, settings)
    await faulty.start()
    await honest.start()
    try:
        victim, bystander = Inbox("dave"), Inbox("eve")
        await faulty.attach(bystander)
        await honest.attach(victim)
        await honest.publish(UserID("dave"), event("secret", 1))
        await bystander.wait(1)
        await victim.wait(1)
        assert bystander.events[0]["thread_id"] == "secret"
    finally:
        await faulty.stop()
        await honest.stop()


async def test_single_session_kicks_every_older_socket(
    hubs: tuple[Hub, Hub], client: aioredis.Redis, settings: Settings
) -> None:
    sessions = Sessions(client, settings)
    one, two = hubs
    inboxes = [Inbox("frank") for _ in range(6)]

    async def login(inbox: Inbox, hub: Hub) -> None:
        await hub.attach(inbox)  # subscribed before claiming: no kick can be missed
        inbox.generation = await sessions.claim_session(UserID("frank"))
        if hub.superseded(inbox):
            inbox.kick(-1)

    await asyncio.gather(*(login(b, (one, two)[i % 2]) for i, b in enumerate(inboxes)))
    newest = max(inboxes, key=lambda b: b.generation or 0)
    for inbox in inboxes:
        if inbox is not newest:
            await inbox.wait(1)
    assert newest.kicks == []
    assert all(inbox.kicks for inbox in inboxes if inbox is not newest)


async def test_socket_cap_and_release(client: aioredis.Redis, settings: Settings) -> None:
    sessions = Sessions(client, settings.replace(max_sockets_per_user=2))
    user = UserID("gina")
    ids = [WebSocketID(f"s{i}") for i in range(4)]
    results = await asyncio.gather(*(sessions.claim_socket(user, s) for s in ids))
    assert sorted(results) == [False, False, True, True]
    assert await sessions.open_sockets(user) == 2
    winner = next(s for s, ok in zip(ids, results, strict=True) if ok)
    await sessions.refresh([(user, winner)])
    await sessions.release_socket(user, winner)
    assert await sessions.claim_socket(user, WebSocketID("late"))
    assert await client.pttl(f"{settings.redis_prefix}:sockets:{user}") > 0


async def test_a_refresh_counts_open_sockets_whose_entries_are_gone(
    client: aioredis.Redis, settings: Settings
) -> None:
    # The key expired while Redis was away (or Redis came back empty): the refresh only
    # updated entries that were there, and the cap stayed lifted for good.
    sessions = Sessions(client, settings.replace(max_sockets_per_user=1))
    user = UserID("ivan")
    assert await sessions.claim_socket(user, WebSocketID("open"))
    await client.delete(f"{settings.redis_prefix}:sockets:{user}")
    await sessions.refresh([(user, WebSocketID("open"))])
    assert await sessions.open_sockets(user) == 1
    assert not await sessions.claim_socket(user, WebSocketID("one too many"))


async def test_expired_socket_entries_do_not_count(
    client: aioredis.Redis, settings: Settings
) -> None:
    sessions = Sessions(client, settings.replace(max_sockets_per_user=1))
    user = UserID("hank")
    key = f"{settings.redis_prefix}:sockets:{user}"
    # An entry left by a crashed worker: its lease ended a second ago.
    seconds, micros = await client.time()
    await client.zadd(key, {"crashed": seconds * 1000 + micros // 1000 - 1000})
    assert await sessions.claim_socket(user, WebSocketID("fresh"))
    assert await client.zrange(key, 0, -1) == ["fresh"]


async def test_token_bucket_is_shared_per_user(client: aioredis.Redis, settings: Settings) -> None:
    limited = settings.replace(message_burst=3, messages_per_second=0.001)
    one, two = RateLimiter(client, limited), RateLimiter(client, limited)
    user = UserID("ivy")
    results = await asyncio.gather(*(lim.allow(user) for lim in (one, two) * 3))
    assert sorted(results) == [False, False, False, True, True, True]
    assert await one.allow(UserID("other"))
    with pytest.raises(RateLimited, match="ivy"):
        await two.check(user)
