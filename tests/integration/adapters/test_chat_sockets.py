"""Chat over real loopback sockets against small scripted servers.

Each server runs in the test's own event loop (``websockets``), on 127.0.0.1 and a
free port; its handler plays one behaviour of a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

import squall.adapters.tracker as run_tracker
from squall.adapters.base import Tracker
from squall.adapters.chat import open_chat
from squall.adapters.echo import MAX_FOREIGN, EchoTracker
from squall.adapters.reference import ReferenceAdapter
from squall.adapters.tracker import RunObservation, RunStatus, RunTracker, SeqGap
from squall.engine.errors import ConnectionClosed, SendTimeout
from squall.engine.identity import AnonymousIdentities
from squall.engine.session import Session
from squall.metrics.recorder import Recorder

pytestmark = pytest.mark.integration

Handler = Callable[[ServerConnection], Awaitable[None]]

#: Big enough that the connection's buffers fill within a few hundred frames.
BIG = "x" * 100_000


@contextlib.asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[str]:
    """A WebSocket server on a free loopback port whose every socket runs ``handler``."""
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def session_for(url: str) -> Session:
    return Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {"ws_url": url})


async def fill_buffers_then_chat(
    session: Session, budget: float, waited: list[float], released: asyncio.Event
) -> None:
    """Send big frames until the connection's buffers are full, then chat one message
    through the echo adapter; ``waited`` gets how long the chat took. Then ``released``
    lets the target read again, before the socket closes."""
    async with open_chat(session, adapter="echo", planned=2) as chat:
        for _ in range(2_000):  # far more than the buffers hold
            try:
                await chat.ws.send_text(BIG, timeout=0.2)
            except SendTimeout:
                break
        else:
            pytest.fail("every send went out: the buffers never filled")
        started = time.monotonic()
        try:
            await chat.chat("t", "held back", timeout=budget)
        finally:
            waited.append(time.monotonic() - started)
            released.set()


async def test_a_send_held_back_by_a_target_taking_no_data_ends_at_the_messages_timeout() -> None:
    # The target reads nothing until released: the connection's buffers fill, and the
    # chat's send waits. Its message's 0.5 s is the budget, not the engine's 10 s default.
    released = asyncio.Event()

    async def stalled(connection: ServerConnection) -> None:
        await released.wait()
        async for _ in connection:  # drains what piled up, so the close is polite
            pass

    waited: list[float] = []
    async with scripted(stalled) as url:
        session = session_for(url)
        try:
            with pytest.raises(SendTimeout, match=r"took no data for 0\.5 s"):
                await fill_buffers_then_chat(session, 0.5, waited, released)
        finally:
            released.set()
            await session.aclose()
    assert 0.4 < waited[0] < 5.0
    recorder = session.recorder
    assert recorder.counter("errors.send_timeout") == 2  # the filler's and the message's
    # The message held back and the one never tried both failed.
    assert recorder.state().rates["success"] == (0, 2)


async def test_replies_naming_other_messages_are_all_counted_though_fewer_are_kept() -> None:
    # Each message is answered by more frames naming other messages than the echo
    # tracker keeps: the protocol error still counts every one of them.
    extra = 5

    async def wrong_ids(connection: ServerConnection) -> None:
        async for raw in connection:
            frame = json.loads(raw)
            for index in range(MAX_FOREIGN + extra):
                await connection.send(json.dumps({**frame, "client_msg_id": f"other-{index}"}))

    async with scripted(wrong_ids) as url:
        session = session_for(url)
        try:
            async with open_chat(session, adapter="echo", planned=2) as chat:
                for _ in range(2):
                    observation = await chat.chat("t", "hello", timeout=1.0)
                    assert observation.status is RunStatus.TIMED_OUT
                assert isinstance(chat.tracker, EchoTracker)
                assert len(chat.tracker.foreign_events) == MAX_FOREIGN
                dropped = chat.tracker.foreign_dropped
        finally:
            await session.aclose()
    assert dropped == MAX_FOREIGN + 2 * extra
    recorder = session.recorder
    assert recorder.counter("timeouts") == 2
    assert recorder.counter("errors.protocol") == 2
    # Both messages' samples read the same (each counts only its own frames): one is kept.
    (sample,) = recorder.state().error_samples["protocol"]
    assert f"though {MAX_FOREIGN + extra} frame(s) arrived that the 'echo' adapter" in sample
    # The first of each message's frames was dropped: the oldest one kept is shown.
    assert 'Oldest frame kept: {"type": "chat"' in sample
    assert f'"client_msg_id": "other-{extra}"' in sample


def reference_run(message: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The reference protocol's answer to ``message``: its ack and a whole run."""
    thread = message["thread_id"]
    kinds = ["agent_started", "tool_executing", "tool_completed", "agent_thinking"]
    events: list[dict[str, Any]] = [
        {"type": kind, "thread_id": thread, "run_id": run_id, "seq": seq, "ts": 0.0}
        for seq, kind in enumerate(kinds, start=1)
    ]
    events.append(
        {
            "type": "agent_completed",
            "thread_id": thread,
            "run_id": run_id,
            "seq": 5,
            "ts": 0.0,
            "status": "completed",
        }
    )
    ack = {"type": "ack", "client_msg_id": message["client_msg_id"], "run_id": run_id}
    return [ack, *events]


async def test_errors_without_ids_are_counted_and_fail_only_the_message_they_answer() -> None:
    # A target speaking the reference protocol. "unreadable" is rejected as the platform
    # rejects a frame it cannot read: with no ids. Every other message is answered after
    # an id-less error of the socket's own work, which fails no message.
    async def target(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "hello"}))
        runs = itertools.count()
        async for raw in connection:
            message = json.loads(raw)
            if message["content"] == "unreadable":
                await connection.send(
                    json.dumps({"type": "error", "code": "bad_frame", "message": "not JSON"})
                )
                continue
            await connection.send(
                json.dumps({"type": "error", "code": "internal", "message": "a replay failed"})
            )
            for frame in reference_run(message, f"r{next(runs)}"):
                await connection.send(json.dumps(frame))

    async with scripted(target) as url:
        session = session_for(url)
        try:
            async with open_chat(session, adapter="squall", planned=2) as chat:
                started = time.monotonic()
                rejected = await chat.chat("t", "unreadable", timeout=5.0)
                waited = time.monotonic() - started
                answered = await chat.chat("t", "hello", timeout=5.0)
        finally:
            await session.aclose()
    assert (rejected.status, rejected.error_code) == (RunStatus.REJECTED, "bad_frame")
    assert waited < 2.5  # rejected when the error came, not at the timeout
    assert answered.status is RunStatus.COMPLETED
    recorder = session.recorder
    assert recorder.counter("timeouts") == 0
    assert recorder.state().rates["success"] == (1, 2)
    assert recorder.counter("errors.server.bad_frame") == 1
    assert recorder.counter("errors.server.internal") == 1
    samples = recorder.state().error_samples
    assert samples["server.bad_frame"] == ["t: message rejected with bad_frame"]
    assert samples["server.internal"] == ["error internal naming no message: a replay failed"]


async def test_what_arrives_after_the_last_answer_is_judged_when_the_chat_ends() -> None:
    # After answering the one message, the target sends an error naming no message, an
    # event of another user's thread, and an event of the chat's thread that skips a seq:
    # no chat reads them, and they are counted all the same.
    async def target(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "hello"}))
        async for raw in connection:
            message = json.loads(raw)
            for frame in reference_run(message, "r0"):
                await connection.send(json.dumps(frame))
            late = [
                {"type": "error", "code": "internal", "message": "a replay failed"},
                {"type": "agent_started", "thread_id": "mallory-t", "run_id": "m0", "seq": 1},
                {"type": "agent_started", "thread_id": "t", "run_id": "r1", "seq": 7},
            ]
            for frame in late:
                await connection.send(json.dumps({"ts": 0.0, **frame}))

    async with scripted(target) as url:
        session = session_for(url)
        try:
            async with open_chat(session, adapter="squall") as chat:
                answered = await chat.chat("t", "hello", timeout=5.0)
                async with asyncio.timeout(5.0):
                    while len(chat.ws._inbox) < 3:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
        finally:
            await session.aclose()
    assert answered.status is RunStatus.COMPLETED
    recorder = session.recorder
    assert recorder.counter("errors.server.internal") == 1
    assert recorder.counter("isolation_leaks") == 1
    assert recorder.counter("seq_gaps") == 1
    samples = recorder.state().error_samples
    assert samples["isolation"] == [
        f"user {session.identity.user_id} received an event of thread mallory-t"
    ]
    assert samples["ordering"] == ["thread t: expected seq 6, got 7 (a gap: 1 missing)"]


CAP_ERROR = {"type": "error", "code": "too_many_sockets", "message": "1 open sockets already"}
SLOW_CONSUMER = "slow consumer: 1000 frames waiting (SQUALL_SOCKET_SEND_QUEUE)"


def closing(*frames: dict[str, Any], code: int, reason: str) -> Handler:
    """A target that answers the first message with ``frames``, then closes the socket."""

    async def target(connection: ServerConnection) -> None:
        await connection.recv()
        for frame in frames:
            await connection.send(json.dumps(frame))
        # Long enough for the chat to read the frames before the close, mostly; the
        # counts must be the same when the close comes first.
        await asyncio.sleep(0.1)
        await connection.close(code, reason)

    return target


async def chat_once(session: Session) -> None:
    async with open_chat(session, adapter="squall") as chat:
        await chat.chat("t", "hello", timeout=5.0)


@pytest.mark.parametrize(
    ("target", "counted", "sample"),
    [
        pytest.param(
            closing(CAP_ERROR, code=1008, reason="too_many_sockets"),
            "server.too_many_sockets",
            "error too_many_sockets naming no message: 1 open sockets already",
            id="error-read-then-close",
        ),
        pytest.param(
            closing(code=1013, reason="unavailable"),
            "server.unavailable",
            "socket refused with unavailable: ws://",
            id="only-the-reason",
        ),
        pytest.param(
            closing(code=1008, reason=SLOW_CONSUMER),
            "closed",
            "ws://",
            id="slow-consumer",
        ),
        pytest.param(
            closing(code=1011, reason="internal"),
            "closed",
            "ws://",
            id="not-a-refusal-close",
        ),
    ],
)
async def test_a_close_refusing_the_socket_counts_once_as_the_servers_error(
    target: Handler, counted: str, sample: str
) -> None:
    async with scripted(target) as url:
        session = session_for(url)
        try:
            with pytest.raises(ConnectionClosed):
                await chat_once(session)
        finally:
            await session.aclose()
    state = session.recorder.state()
    errors = {name: n for name, n in state.counters.items() if name.startswith("errors")}
    assert errors == {"errors": 1, f"errors.{counted}": 1}
    (kept,) = state.error_samples[counted]
    assert kept.startswith(sample)


async def test_a_close_this_socket_began_is_no_refusal() -> None:
    # The reason is an error code, but this socket closed first: not the server's refusal.
    async def target(connection: ServerConnection) -> None:
        async for _ in connection:
            pass

    async with scripted(target) as url:
        session = session_for(url)
        try:
            async with open_chat(session, adapter="squall") as chat:
                await chat.ws.close(1008, "too_many_sockets")
                with pytest.raises(ConnectionClosed):
                    await chat.chat("t", "hello", timeout=5.0)
        finally:
            await session.aclose()
    assert session.recorder.counter("errors.closed") == 1
    assert session.recorder.counter("errors") == 1


#: More than the reference tracker keeps of each of its findings.
FLOOD = max(run_tracker.MAX_FOREIGN, run_tracker.MAX_GAPS, run_tracker.MAX_UNMATCHED) + 200


def flood(user: str, message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """Before answering message ``index``: ``FLOOD`` events of another user's thread (leaks)
    and of the user's own other thread (none), ``FLOOD`` errors of the socket's own work and
    ``FLOOD`` events of the user's thread that each skip a seq; then the answer."""
    first = index * FLOOD
    frames: list[dict[str, Any]] = []
    for n in range(first + 1, first + FLOOD + 1):
        frames += [
            {"type": "agent_thinking", "thread_id": "mallory-t", "run_id": "m", "seq": n},
            {"type": "agent_thinking", "thread_id": f"{user}-other", "run_id": "o", "seq": n},
            {"type": "error", "code": "internal", "message": "a replay failed"},
            {"type": "agent_thinking", "thread_id": f"{user}-gappy", "run_id": "g", "seq": 2 * n},
        ]
    return [*frames, *reference_run(message, f"r{index}")]


async def test_a_flood_beyond_the_trackers_bounds_is_counted_exactly() -> None:
    # Each message's wait brings more leaks, errors and gaps than the tracker keeps of
    # each: every one is counted, every event judged, and the tracker holds its bounds.
    session = session_for("")
    user = session.identity.user_id

    async def target(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "hello"}))
        index = 0
        async for raw in connection:
            for frame in flood(user, json.loads(raw), index):
                await connection.send(json.dumps({"ts": 0.0, **frame}))
            index += 1

    async with scripted(target) as url:
        session.params["ws_url"] = url
        try:
            async with open_chat(session, adapter="squall", planned=2) as chat:
                for index in range(2):
                    observation = await chat.chat(f"t{index}", "hello", timeout=20.0)
                    assert observation.status is RunStatus.COMPLETED
                assert isinstance(chat.tracker, RunTracker)
                tracker = chat.tracker
        finally:
            await session.aclose()
    assert len(tracker.foreign_events) == run_tracker.MAX_FOREIGN
    assert len(tracker.unmatched_errors) == run_tracker.MAX_UNMATCHED
    assert len(tracker.gaps) == run_tracker.MAX_GAPS
    recorder = session.recorder
    # The first gappy event of all is no gap: the thread's tracking starts there.
    expected = {
        "isolation_leaks": 2 * FLOOD,
        "errors.isolation": 2 * FLOOD,
        "errors.server.internal": 2 * FLOOD,
        "seq_gaps": 2 * FLOOD - 1,
        "errors.ordering": 2 * FLOOD - 1,
        "errors": 6 * FLOOD - 1,
    }
    assert {name: recorder.counter(name) for name in expected} == expected
    assert recorder.state().rates["success"] == (2, 2)  # (passed, of)
    assert recorder.state().error_samples["isolation"] == [
        f"user {user} received an event of thread mallory-t"
    ]


class Uncounting:
    """The reference tracker as a tracker that bounds its lists but does not count its
    findings would be: the chat can only record what it still keeps when it looks."""

    def __init__(self) -> None:
        self.inner = RunTracker()

    @property
    def gaps(self) -> list[SeqGap]:
        return self.inner.gaps

    @property
    def gaps_dropped(self) -> int:
        return self.inner.gaps_dropped

    @property
    def foreign_events(self) -> list[Mapping[str, Any]]:
        return self.inner.foreign_events

    @property
    def foreign_dropped(self) -> int:
        return self.inner.foreign_dropped

    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        return self.inner.sent(client_msg_id, thread_id, now)

    def feed(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        return self.inner.feed(frame, now)

    def expire(self, observation: RunObservation, now: float) -> None:
        self.inner.expire(observation, now)


class UncountingAdapter(ReferenceAdapter):
    def tracker(self) -> Tracker:
        return Uncounting()


async def test_findings_a_tracker_dropped_before_they_were_recorded_are_counted() -> None:
    # The leaks come first, then more of the user's own events than the tracker keeps,
    # each skipping a seq: by the time the chat looks, the leaks and the first gaps are
    # gone. Every gap still counts, and the verdict must not pass on the leaks it missed.
    leaks = 50
    gaps = run_tracker.MAX_GAPS + 10
    session = session_for("")
    own = f"{session.identity.user_id}-own"

    async def target(connection: ServerConnection) -> None:
        async for raw in connection:
            message = json.loads(raw)
            frames = [
                {"type": "agent_thinking", "thread_id": "mallory-t", "run_id": "m", "seq": n}
                for n in range(1, leaks + 1)
            ] + [
                {"type": "agent_thinking", "thread_id": own, "run_id": "o", "seq": 2 * n}
                for n in range(1, gaps + 2)  # the first starts the thread
            ]
            for frame in [*frames, *reference_run(message, "r0")]:
                await connection.send(json.dumps({"ts": 0.0, **frame}))

    async with scripted(target) as url:
        session.params["ws_url"] = url
        try:
            async with open_chat(session, adapter=UncountingAdapter(), planned=1) as chat:
                observation = await chat.chat("t", "hello", timeout=20.0)
        finally:
            await session.aclose()
    assert observation.status is RunStatus.COMPLETED
    recorder = session.recorder
    # The user's own events dropped unjudged with them count too: the chat cannot tell.
    unjudged = leaks + gaps + 1 - run_tracker.MAX_FOREIGN
    assert recorder.counter("isolation_leaks") == unjudged
    (sample,) = recorder.state().error_samples["isolation"]
    assert sample.endswith("received an event the tracker dropped before it was judged")
    assert recorder.counter("seq_gaps") == gaps
    assert recorder.counter("errors.ordering") == gaps
    assert any(
        sample.endswith("a gap the tracker no longer keeps")
        for sample in recorder.state().error_samples["ordering"]
    )


class HeaderlessAdapter(ReferenceAdapter):
    def headers(self, identity: Any) -> dict[str, str]:
        raise RuntimeError("no token for this user")


async def test_a_chat_whose_adapter_cannot_give_its_headers_fails_its_messages() -> None:
    # The error escaped before any message was counted: success had no sample, its
    # threshold was not applicable, and a run of such chats passed.
    session = session_for("ws://127.0.0.1:9/")
    with pytest.raises(RuntimeError, match="no token for this user"):
        async with open_chat(session, adapter=HeaderlessAdapter(), planned=3):
            pytest.fail("no chat without headers")
    assert session.recorder.state().rates["success"] == (0, 3)


class BrokenTracker(RunTracker):
    def feed(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        if frame.get("type") == "agent_started":
            raise ValueError("this adapter cannot read agent_started")
        return super().feed(frame, now)


class BrokenTrackerAdapter(ReferenceAdapter):
    def tracker(self) -> Tracker:
        return BrokenTracker()


async def answering(connection: ServerConnection) -> None:
    """A target that greets, then answers each message with a whole reference run."""
    await connection.send(json.dumps({"type": "hello"}))
    async for raw in connection:
        for frame in reference_run(json.loads(raw), "r1"):
            await connection.send(json.dumps(frame))


async def test_a_message_whose_frame_an_adapter_cannot_read_counts_as_failed() -> None:
    # The error ended the chat before the message in flight was counted: success had
    # one sample fewer than the messages planned.
    async with scripted(answering) as url:
        session = session_for(url)
        try:
            with pytest.raises(ValueError, match="cannot read agent_started"):
                async with open_chat(session, adapter=BrokenTrackerAdapter(), planned=3) as chat:
                    await chat.chat("t", "hello", timeout=5.0)
        finally:
            await session.aclose()
    assert session.recorder.state().rates["success"] == (0, 3)


class NoTrackerAdapter(ReferenceAdapter):
    def tracker(self) -> Tracker:
        raise RuntimeError("tracker boom")


class SentRaisesTracker(RunTracker):
    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        raise RuntimeError("sent boom")


class SentRaisesAdapter(ReferenceAdapter):
    def tracker(self) -> Tracker:
        return SentRaisesTracker()


@pytest.mark.parametrize(
    ("adapter", "error"),
    [(NoTrackerAdapter(), "tracker boom"), (SentRaisesAdapter(), "sent boom")],
    ids=["tracker", "sent"],
)
async def test_an_adapter_whose_tracker_raises_fails_every_planned_message(
    adapter: ReferenceAdapter, error: str
) -> None:
    # tracker() raising left success with no sample (a run of such chats passed, its
    # threshold not applicable); sent() raising left its message out of both columns.
    async def target(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "hello"}))
        async for _ in connection:
            pass

    async with scripted(target) as url:
        session = session_for(url)
        try:
            with pytest.raises(RuntimeError, match=error):
                async with open_chat(session, adapter=adapter, planned=3) as chat:
                    await chat.chat("t", "hello", timeout=5.0)
        finally:
            await session.aclose()
    assert session.recorder.state().rates["success"] == (0, 3)


class SaysNoAdapter(ReferenceAdapter):
    def delivered(self, observation: RunObservation) -> bool:
        return "no"  # type: ignore[return-value]  # the mistake under test


async def test_a_delivery_verdict_that_is_no_bool_counts_as_not_delivered() -> None:
    # "no" is truthy: it counted as a delivery.
    async with scripted(answering) as url:
        session = session_for(url)
        try:
            async with open_chat(session, adapter=SaysNoAdapter(), planned=1) as chat:
                await chat.chat("t", "hello", timeout=5.0)
        finally:
            await session.aclose()
    state = session.recorder.state()
    assert state.rates["delivery"] == (0, 1)
    assert state.error_samples["adapter"] == [
        "SaysNoAdapter.delivered() returned 'no', not True or False: counted as not delivered"
    ]
