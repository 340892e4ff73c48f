"""Per-worker delivery of thread events and session kicks, over Redis pub/sub.

Every worker keeps ONE pub/sub connection. It subscribes to the channels of the
users that have a socket on this worker (``{prefix}:user:{id}`` for events,
``{prefix}:kick:{id}`` for single-session kicks) and dispatches each message to
those local sockets. :meth:`Hub.publish` is the runtime's ``publish``: it sends
to the user's channel, so every worker holding a socket of that user delivers it.

A member is attached only once Redis has confirmed the subscription, so a socket
that has been told ``hello`` cannot miss a later event of its user. Pub/sub loses what is
published while its connection is down (a Redis restart, a failover, a dropped
connection); when it is back, every local member is told to ``resync``: it replays from
storage what it missed. A connection can also go silent without closing (a half-open
connection after a network partition, a NAT or firewall that dropped its state, a Redis
paused or stuck in a long command): when nothing at all has arrived for :data:`QUIET_S`,
the hub sends a ``PING``, and if nothing arrives within ``redis_command_timeout_s`` after
it, the hub logs it once, drops the connection, and reconnects and resyncs as after a
dropped one (a reconnect to a Redis still silent gives up after the same timeout and is
tried again). A healthy idle connection answers each ``PING`` with a ``pong``. A
``PUBLISH`` that fails because Redis cannot be reached (a Redis paused for less than that
keeps pub/sub connected, so no resync follows) is published again once Redis answers
(:mod:`squall.target.republish`): else a thread's last event would wait for the next one.
Kicks are caught up too: after a reconnect the hub reads each local single-session user's
generation counter and closes the sockets below it (a login whose kick was published while
the connection was down); a counter below the newest local session (Redis came back empty)
is raised to it and announced, so later logins still outnumber every open socket.
Dispatch is
synchronous (``member.deliver`` only enqueues); backpressure lives in the
sockets' bounded queues, not here.

With the ``broadcast_events`` fault the hub subscribes to every user's channel
and delivers each event to every local socket: a deliberate isolation defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import defaultdict
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from squall.target import outage, redis_pool, republish
from squall.target.ids import UserID
from squall.target.protocol import encode
from squall.target.settings import Settings

log = logging.getLogger("squall.target.hub")

SUBSCRIBE_TIMEOUT_S = 10.0
#: Seconds a pub/sub read waits for a message before the reader looks up again.
READ_S = 1.0
#: Seconds without any pub/sub message (events, subscribe confirmations, pongs) after which
#: the hub sends a ``PING`` on the connection; if nothing at all arrives within
#: ``redis_command_timeout_s`` after it, the connection counts as lost. So an idle worker
#: pings about once a second, and a silent connection is noticed within
#: ``QUIET_S + redis_command_timeout_s``.
QUIET_S = 1.0
#: Seconds before pub/sub last answered from which a resync replays: a message published
#: just before the connection went may not have arrived.
IN_FLIGHT_MARGIN_S = 2.0


class Member(Protocol):
    """A local socket as the hub sees it."""

    @property
    def user_id(self) -> UserID: ...

    @property
    def session(self) -> int | None:
        """Single-session generation of this socket, ``None`` under the multi policy."""

    def deliver(self, event: dict[str, Any]) -> None:
        """Take a thread event; must not block."""

    def kick(self, generation: int) -> None:
        """A newer session (``generation``) of the same user exists: close with 4409."""

    def resync(self, since: float) -> None:
        """Events of its user published from ``since`` (Unix time) on may have been missed
        (pub/sub was down): catch up from storage; must not block."""


class SubscribeTimeout(RuntimeError):
    """Redis did not confirm a subscription in time."""


class _Silent(Exception):
    """The pub/sub connection did not answer a ``PING`` in time."""


class Silence:
    """When a quiet pub/sub connection gets a ``PING``, and when it counts as lost (pure:
    the caller passes the monotonic time)."""

    def __init__(self, timeout_s: float, now: float) -> None:
        self._timeout_s = timeout_s
        self._heard_at = now
        self._pinged_at: float | None = None

    def heard(self, now: float) -> None:
        """Something arrived: the connection is alive."""
        self._heard_at = now
        self._pinged_at = None

    def pinged(self, now: float) -> None:
        self._pinged_at = now

    def ping_due(self, now: float) -> bool:
        return self._pinged_at is None and now - self._heard_at >= QUIET_S

    def lost(self, now: float) -> bool:
        """Nothing arrived within the timeout after the ``PING``."""
        return self._pinged_at is not None and now - self._pinged_at >= self._timeout_s

    def wait(self, now: float) -> float:
        """How long the next read may wait: :data:`READ_S`, or less when a ``PING`` or the
        end of its timeout comes sooner."""
        due = (
            self._heard_at + QUIET_S
            if self._pinged_at is None
            else self._pinged_at + self._timeout_s
        )
        return max(0.0, min(READ_S, due - now))


def user_channel(prefix: str, user: UserID) -> str:
    return f"{prefix}:user:{user}"


def kick_channel(prefix: str, user: UserID) -> str:
    return f"{prefix}:kick:{user}"


def session_key(prefix: str, user: UserID) -> str:
    """The user's single-session generation counter (see :mod:`squall.target.sessions`)."""
    return f"{prefix}:session:{user}"


#: The user's generation, raised to ARGV[1] (the newest session a worker holds) and announced
#: on the kick channel when it is below it: a Redis that came back empty restarts at 0.
_SESSION_AT_LEAST = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local newest = tonumber(ARGV[1])
if current < newest then
  redis.call('SET', KEYS[1], newest)
  redis.call('PUBLISH', KEYS[2], newest)
  return newest
end
return current
"""


class Hub:
    """One worker's view of pub/sub: local members per user and their channels."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.redis_prefix
        self._broadcast = settings.fault("broadcast_events")
        self._user_prefix = f"{self._prefix}:user:"
        self._kick_prefix = f"{self._prefix}:kick:"
        self._control = f"{self._prefix}:worker:{os.getpid()}:{uuid.uuid4().hex}"
        self._timeout_s = settings.redis_command_timeout_s
        # Its own connection: a subscriber holds it for good (see ``redis_pool``).
        self._listener = redis_pool.connect_pubsub(settings, "hub", decode_responses=True)
        self._pubsub = self._listener.pubsub()
        # A list, not a set: a user has one socket here most of the time, at most
        # max_sockets_per_user, and an empty set costs 216 bytes, a list 56.
        self._members: dict[UserID, list[Member]] = {}
        #: Subscribes sent and confirmed per channel, only while one is unconfirmed.
        self._sent: dict[str, int] = defaultdict(int)
        self._confirmed: dict[str, int] = {}
        self._ready: dict[str, asyncio.Event] = {}
        #: Highest single-session generation announced per local user.
        self._kick_generation: dict[UserID, int] = {}
        self._reader: asyncio.Task[None] | None = None
        self._session_at_least = redis.register_script(_SESSION_AT_LEAST)
        #: The catch-up of kicks after a reconnect (one at a time).
        self._kick_check: asyncio.Task[None] | None = None
        #: Events whose publish found Redis unreachable; set when there are some.
        self._backlog = republish.Backlog()
        self._backlogged = asyncio.Event()
        self._republisher: asyncio.Task[None] | None = None
        self.published = 0
        #: Events published again after their first publish found Redis unreachable.
        self.republished = 0
        self.received = 0
        self.delivered = 0
        #: Times pub/sub came back after a failure and the local sockets caught up.
        self.resyncs = 0

    async def start(self) -> None:
        # Always subscribed to a private channel, so the reader never waits on
        # an idle connection and subscribe calls never race a first connect.
        await self._subscribe(self._control)
        if self._broadcast:
            await self._pubsub.psubscribe(self._user_prefix + "*")
        self._reader = asyncio.create_task(self._read(), name="squall-hub-reader")
        self._republisher = asyncio.create_task(self._republish(), name="squall-hub-republish")
        await self._wait_ready(self._control)

    async def stop(self) -> None:
        for task in (self._reader, self._republisher, self._kick_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader = self._republisher = self._kick_check = None
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError):
            await self._listener.aclose()

    async def publish(self, user: UserID, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every socket of ``user`` on every worker (the runtime's seam).

        A failure is raised; if Redis could not be reached, the event is also kept and
        published again once it answers (see :mod:`squall.target.republish`)."""
        try:
            await self._redis.publish(user_channel(self._prefix, user), encode(event))
        except Exception as exc:
            if redis_pool.connection_lost(exc):
                self._backlog.add(user, event, time.monotonic())
                if self._backlog:
                    self._backlogged.set()
            raise
        self.published += 1
        self._backlog.published(event)

    async def attach(self, member: Member) -> None:
        """Register a local socket; returns once its user's channels are subscribed."""
        user = member.user_id
        members = self._members.get(user)
        first = members is None
        if members is None:
            members = self._members[user] = []
        members.append(member)
        channels = (user_channel(self._prefix, user), kick_channel(self._prefix, user))
        try:
            if first:
                await self._subscribe(*channels)
            for channel in channels:
                await self._wait_ready(channel)
        except BaseException:
            self.detach(member)
            raise

    def detach(self, member: Member) -> None:
        user = member.user_id
        members = self._members.get(user)
        index = next((i for i, m in enumerate(members or ()) if m is member), None)
        if members is None or index is None:
            return
        del members[index]
        if not members:
            del self._members[user]
            self._kick_generation.pop(user, None)
            channels = (user_channel(self._prefix, user), kick_channel(self._prefix, user))
            task = asyncio.create_task(self._unsubscribe(*channels), name="unsubscribe")
            task.add_done_callback(_log_failure)

    def superseded(self, member: Member) -> bool:
        """Whether a newer session of ``member``'s user was already announced here."""
        newest = self._kick_generation.get(member.user_id, 0)
        return member.session is not None and member.session < newest

    def local_members(self) -> int:
        return sum(len(m) for m in self._members.values())

    def local_users(self) -> int:
        return len(self._members)

    @property
    def backlog(self) -> int:
        """Events waiting to be published again (see :mod:`squall.target.republish`)."""
        return len(self._backlog)

    # --- internals -------------------------------------------------------------------------

    async def _subscribe(self, *channels: str) -> None:
        for channel in channels:
            self._sent[channel] += 1
            if channel not in self._ready:
                self._ready[channel] = asyncio.Event()
        await self._pubsub.subscribe(*channels)

    async def _unsubscribe(self, *channels: str) -> None:
        # Skip channels re-attached meanwhile: the later subscribe wins either way,
        # since both commands travel in order on the one connection.
        idle = [c for c in channels if self._channel_user(c) not in self._members]
        if idle:
            for channel in idle:
                self._ready.pop(channel, None)
            await self._pubsub.unsubscribe(*idle)

    def _channel_user(self, channel: str) -> UserID | None:
        for prefix in (self._user_prefix, self._kick_prefix):
            if channel.startswith(prefix):
                return UserID(channel[len(prefix) :])
        return None

    async def _wait_ready(self, channel: str) -> None:
        event = self._ready.get(channel)
        if event is None:
            return
        try:
            await asyncio.wait_for(event.wait(), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            raise SubscribeTimeout(
                f"Redis did not confirm the subscription to {channel!r} within "
                f"{SUBSCRIBE_TIMEOUT_S} s; check SQUALL_REDIS_URL and the server's health"
            ) from None

    async def _read(self) -> None:
        lost = False
        #: When pub/sub last delivered anything: whatever was published after it (less a
        #: margin for messages in flight) may be lost once the connection is.
        alive_at = time.time()
        silence = Silence(self._timeout_s, time.monotonic())
        while True:
            try:
                message = await self._pubsub.get_message(timeout=silence.wait(time.monotonic()))
                now = time.monotonic()
                if message is None and silence.lost(now):
                    raise _Silent
                if message is None and silence.ping_due(now):
                    await self._pubsub.ping()
                    silence.pinged(now)
            except (RedisError, OSError, _Silent) as exc:
                if not lost:
                    if isinstance(exc, _Silent):
                        log.warning(
                            "pub/sub connection silent: no answer to PING within "
                            "SQUALL_REDIS_COMMAND_TIMEOUT_S (%s s); reconnecting",
                            self._timeout_s,
                        )
                    else:
                        log.warning("pub/sub read failed (%s); reconnecting", exc)
                lost = True
                if isinstance(exc, _Silent) and self._pubsub.connection is not None:
                    # Dropped: redis-py connects and subscribes again on the next read.
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.connection.disconnect(nowait=True)
                await asyncio.sleep(0.5)
                silence = Silence(self._timeout_s, time.monotonic())
                continue
            if lost:
                # Reconnected (redis-py subscribed again on connect): whatever was published
                # meanwhile is lost to pub/sub, but stored; every local socket catches up.
                lost = False
                self._resync(alive_at - IN_FLIGHT_MARGIN_S)
            if message is not None:
                alive_at = time.time()
                silence.heard(time.monotonic())
                try:
                    self._handle(message)
                except Exception:
                    log.exception("dropping undeliverable pub/sub message %r", message)

    async def _republish(self) -> None:
        """Publish the backlog again, oldest first, once Redis answers: after each failure
        it waits as :func:`outage.retrying` does (short, doubling pauses up to a second)."""
        while True:
            await self._backlogged.wait()
            pause = outage.RETRY_FIRST_S  # the publish that filled the backlog just failed
            published = 0
            while True:
                if pause:
                    await asyncio.sleep(pause)
                pending = self._backlog.next(time.monotonic())
                dropped = self._backlog.take_dropped()
                if dropped:
                    log.warning(
                        "dropped %d event(s) whose publish failed while Redis was unreachable "
                        "(more than %d threads waiting, or older than %.0f s); their sockets get "
                        "them with their thread's next event or a resume",
                        dropped,
                        republish.MAX_THREADS,
                        republish.MAX_AGE_S,
                    )
                if pending is None:
                    break
                channel = user_channel(self._prefix, pending.user)
                try:
                    await self._redis.publish(channel, encode(pending.event))
                except Exception as exc:
                    if redis_pool.connection_lost(exc):
                        pause = outage.next_pause(pause)
                    else:
                        log.warning("dropping an event that failed to publish again: %s", exc)
                        self._backlog.discard(pending)
                    continue
                pause = 0.0
                published += 1
                self.republished += 1
                self._backlog.published(pending.event)
            self._backlogged.clear()
            if published:
                log.warning(
                    "Redis answers again: published %d event(s) whose publish had failed",
                    published,
                )

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "subscribe":
            confirmed = self._confirmed.get(channel, 0) + 1
            if confirmed < self._sent.get(channel, 0):
                self._confirmed[channel] = confirmed  # a later subscribe is still in flight
            else:
                # Confirmed: waiters wake, later ones find no event and go on at once;
                # the counts go, so a subscribed channel costs nothing here.
                self._sent.pop(channel, None)
                self._confirmed.pop(channel, None)
                event = self._ready.pop(channel, None)
                if event is not None:
                    event.set()
            return
        if kind == "pmessage":
            self.received += 1
            event_dict = json.loads(message["data"])
            for members in list(self._members.values()):
                self._deliver(members, event_dict)
            return
        if kind != "message":
            return
        if channel.startswith(self._kick_prefix):
            user = UserID(channel[len(self._kick_prefix) :])
            self._on_kick(user, int(message["data"]))
        elif channel.startswith(self._user_prefix) and not self._broadcast:
            self.received += 1
            user = UserID(channel[len(self._user_prefix) :])
            local = self._members.get(user)
            if local:
                self._deliver(local, json.loads(message["data"]))

    def _resync(self, since: float) -> None:
        self.resyncs += 1
        members = [m for local in self._members.values() for m in local]
        log.warning(
            "pub/sub reconnected; %d local socket(s) replay what they missed from storage",
            len(members),
        )
        for member in members:
            member.resync(since)
        if self._kick_check is None or self._kick_check.done():
            self._kick_check = asyncio.create_task(
                self._check_sessions(), name="single-session check"
            )
            self._kick_check.add_done_callback(_log_failure)

    async def _check_sessions(self) -> None:
        """Catch up on the kicks pub/sub lost: each local single-session user's generation,
        read (raised to its newest local session when below it) and applied."""
        newest = {
            user: max(sessions)
            for user, members in self._members.items()
            if (sessions := [m.session for m in members if m.session is not None])
        }
        if not newest:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user, session in newest.items():
                    keys = [session_key(self._prefix, user), kick_channel(self._prefix, user)]
                    await self._session_at_least(keys=keys, args=[session], client=pipe)
                generations = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("single-session check after the reconnect failed (%s)", exc)
            return
        for user, generation in zip(newest, generations, strict=True):
            self._on_kick(user, int(generation))

    def _deliver(self, members: list[Member], event: dict[str, Any]) -> None:
        for member in list(members):
            member.deliver(event)
            self.delivered += 1

    def _on_kick(self, user: UserID, generation: int) -> None:
        if generation <= self._kick_generation.get(user, 0):
            return
        self._kick_generation[user] = generation
        for member in list(self._members.get(user, ())):
            if member.session is not None and member.session < generation:
                member.kick(generation)

    def __repr__(self) -> str:
        return (
            f"<Hub users={self.local_users()} sockets={self.local_members()} "
            f"published={self.published} received={self.received} delivered={self.delivered} "
            f"resyncs={self.resyncs} republished={self.republished} "
            f"backlog={len(self._backlog)} "
            f"unconfirmed={len(self._sent)}>"
        )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s failed: %s", task.get_name(), task.exception())
