"""The WebSocket client's waits against a real echo server: timeouts, counts, wake-ups.

A socket keeps one timer at its earliest pending deadline and moves it only
when it fires, so these tests pin down the cases that scheme must get right: a
shorter deadline after a longer one, a longer one after a shorter one, and a
reply that comes after its request timed out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import websockets
from engine_echo_server import close_ignoring_server, echo_server
from websockets.asyncio.server import ServerConnection, serve

from squall.engine.client import CLOSE_TIMEOUT_S, MAX_MESSAGE_BYTES, WebSocket, connect
from squall.engine.errors import (
    ConnectError,
    ConnectionClosed,
    MessageTimeout,
    SendTimeout,
    UnexpectedMessage,
)
from squall.metrics.recorder import Recorder

pytestmark = pytest.mark.integration


async def _open(url: str) -> tuple[WebSocket, Recorder]:
    recorder = Recorder()
    return await connect(url, recorder, time.monotonic), recorder


def _is_seq(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("seq") == seq


async def test_a_shorter_deadline_after_a_long_one_still_times_out() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            # The socket's timer is armed 60 s out by this request...
            assert (await ws.request({"seq": 0}, timeout=60.0))["seq"] == 0
            # ...so this one would get its stalled reply (after 1 s) if the timer
            # were not moved to its own 0.2 s deadline.
            with pytest.raises(MessageTimeout, match=r"no message within 0\.2 s"):
                await ws.request({"seq": 1, "stall": 1.0}, timeout=0.2)
            late = await ws.request({"seq": 2}, until=_is_seq(2), timeout=10.0)
            assert late["seq"] == 2
    assert recorder.counter("timeouts") == 1
    assert recorder.counter("messages_sent") == 3
    assert recorder.counter("messages_received") == 3  # the late reply is counted, then skipped
    assert recorder.state().rates["success"] == (2, 3)
    histogram = recorder.histogram("response_time")
    assert histogram is not None
    assert histogram.count == 2


async def test_a_longer_deadline_after_a_short_one_is_not_cut_short() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            # The timer is armed 2 s out; the next request waits 3 s for its reply,
            # which must move the timer instead of timing out.
            await ws.request({"seq": 0}, timeout=2.0)
            reply = await ws.request({"seq": 1, "stall": 3.0}, timeout=20.0)
            assert reply["seq"] == 1
            for seq in range(2, 6):
                assert (await ws.request({"seq": seq}, timeout=10.0))["seq"] == seq
    assert recorder.counter("timeouts") == 0
    assert recorder.state().rates["success"] == (6, 6)


async def test_recv_timeout_is_counted_and_the_socket_stays_usable() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            with pytest.raises(MessageTimeout):
                await ws.recv(timeout=0.05)
            await ws.send_json({"seq": 7})
            assert await ws.recv_json(timeout=5.0) == {"seq": 7}
            with pytest.raises(MessageTimeout):
                await ws.recv_json(timeout=0.0)
    assert recorder.counter("timeouts") == 2
    assert recorder.counter("messages_received") == 1


async def test_messages_behind_the_one_a_reader_waits_for_keep_their_order() -> None:
    """A waiting reader is handed the next message directly; the ones arriving behind it
    queue in the inbox in order. An empty message is a message, not a timeout."""
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            await ws.send_json({"burst": [""]})
            assert await ws.recv(timeout=5.0) == ""
            await ws.send_json({"burst": ["", "second", "third"]})
            assert await ws.recv(timeout=5.0) == ""
            assert await ws.recv(timeout=5.0) == "second"
            assert await ws.recv(timeout=5.0) == "third"
            reply = await ws.request_text(
                '{"burst":["", "x", "y"]}', until=lambda text: text == "y", timeout=5.0
            )
            assert reply == "y"
            assert await ws.request_text('{"burst":[""]}', timeout=5.0) == ""
    assert recorder.counter("messages_received") == 8
    assert recorder.counter("timeouts") == 0
    state = recorder.state()
    assert state.rates["success"] == (2, 2)
    assert state.counters["messages_sent"] == 4


async def test_a_socket_past_max_unread_records_inbox_overflow_and_closes_itself() -> None:
    """A target flooding a socket its behaviour does not read: the socket keeps
    ``max_unread`` messages, records one ``inbox_overflow`` and closes with 1008; what
    it kept can still be read, then reading says why it closed."""
    with echo_server() as server:
        recorder, closed = Recorder(), asyncio.Event()
        ws = await connect(
            server.url, recorder, time.monotonic, on_close=lambda _: closed.set(), max_unread=5
        )
        await ws.send_json({"burst": [str(i) for i in range(50)]})
        await asyncio.wait_for(closed.wait(), 10.0)
        assert [await ws.recv(timeout=1.0) for _ in range(5)] == ["0", "1", "2", "3", "4"]
        with pytest.raises(ConnectionClosed, match=r"code 1008, reason '5 messages unread'"):
            await ws.recv(timeout=1.0)
    assert ws.close_code == 1008
    assert recorder.counter("errors.inbox_overflow") == 1
    (sample,) = recorder.state().error_samples["inbox_overflow"]
    assert "5 messages arrived unread (max_unread)" in sample
    # The ConnectionClosed the read raised is that same failure, counted once.
    assert recorder.counter("errors") == 1


async def test_a_reader_that_keeps_up_never_overflows_a_small_inbox() -> None:
    with echo_server() as server:
        recorder = Recorder()
        ws = await connect(server.url, recorder, time.monotonic, max_unread=3)
        async with ws:
            for _ in range(20):
                await ws.send_json({"burst": ["a", "b", "c"]})
                assert [await ws.recv(timeout=5.0) for _ in range(3)] == ["a", "b", "c"]
            assert not ws.closed
    assert recorder.counter("errors") == 0


#: Big enough that the connection's kernel buffers (some MB on loopback) fill in a few
#: hundred messages, small enough for the echo server's 1 MiB frame limit.
BIG = '{"pad":"' + "x" * 100_000 + '"}'


async def test_sends_wait_while_the_target_takes_no_data_and_time_out_after_timeout() -> None:
    """The echo server stops reading while it stalls: the kernel's buffers fill, then the
    transport's, and a send waits instead of piling messages up in the generator."""
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        # Long enough for the buffers to fill and a send to time out on a slow machine.
        await ws.send_json({"stall": 6})
        sent, refused = 0, None
        for _ in range(2_000):  # at most 200 MB, far more than the buffers hold
            try:
                await ws.send_text(BIG, timeout=0.5)
            except SendTimeout as exc:
                refused = exc
                break
            sent += 1
        assert refused is not None, "every send went out: the buffers never filled"
        assert "took no data for 0.5 s" in str(refused)
        assert ws._paused is not None
        with pytest.raises(SendTimeout):
            await ws.request_text(BIG, timeout=0.2)
        await ws.close(timeout=1.0)  # the server still stalls: no close handshake
    assert 0 < sent < 2_000
    assert recorder.counter("messages_sent") == 1 + sent
    assert recorder.counter("errors.send_timeout") == 2
    assert recorder.state().rates["success"] == (0, 1)


async def test_a_send_that_waited_goes_out_once_the_target_reads_again() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            await ws.send_json({"stall": 2})
            waited = 0
            for _ in range(300):
                waited += ws._paused is not None
                await ws.send_text(BIG, timeout=30.0)
            # Every message reached the server: it echoes each, the stall first.
            assert (await ws.recv_json(timeout=30.0))["stall"] == 2
            for _ in range(300):
                assert await ws.recv(timeout=30.0) == BIG
        assert waited > 0, "the buffers never filled: nothing was tested"
    assert recorder.counter("errors") == 0


async def test_a_close_wakes_the_waiting_reader_with_connection_closed() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        reader = asyncio.create_task(ws.recv(timeout=30.0))
        await asyncio.sleep(0)  # one loop turn: the reader runs until it waits
        assert ws._waiter is not None
        await ws.close()
        with pytest.raises(ConnectionClosed, match="while waiting for a message"):
            await reader
        with pytest.raises(ConnectionClosed, match="while sending"):
            await ws.request({"seq": 1})
    assert recorder.counter("errors.closed") == 2
    assert recorder.counter("timeouts") == 0
    # The request on the closed socket was asked for and never answered.
    assert recorder.state().rates["success"] == (0, 1)


async def test_a_request_whose_until_raises_is_a_failed_request() -> None:
    # The predicate's KeyError left the request out of success: 100 % with every one failed.
    def needs_a_field(message: dict[str, Any]) -> bool:
        return bool(message["needed"])

    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            with pytest.raises(KeyError):
                await ws.request({"seq": 1}, until=needs_a_field, timeout=5.0)
            assert (await ws.request({"seq": 2, "needed": 1}, until=needs_a_field))["seq"] == 2
    assert recorder.state().rates["success"] == (1, 2)


async def test_json_goes_out_compact_utf8_and_comes_back_parsed() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            await ws.send_json({"text": "é ✓", 7: [1, 2.5, None, True]})
            assert await ws.recv(timeout=5.0) == '{"text":"é ✓","7":[1,2.5,null,true]}'
            reply = await ws.request({"seq": 1, "nested": {"k": "v"}}, timeout=5.0)
            assert reply == {"seq": 1, "nested": {"k": "v"}}
            await ws.send_text('"not an object"')
            with pytest.raises(UnexpectedMessage, match="expected a JSON object") as raised:
                await ws.recv_json(timeout=5.0)
            assert "strict JSON" not in str(raised.value)
            # A JSON object strict parsers refuse says why, not only "expected an object".
            await ws.send_text('{"seq": 1e400}')
            with pytest.raises(UnexpectedMessage, match=r"\(not strict JSON: number is infin"):
                await ws.recv_json(timeout=5.0)
            await ws.send_text('{"seq": NaN}')
            with pytest.raises(UnexpectedMessage, match=r"\(not strict JSON: "):
                await ws.request({"seq": 3}, timeout=5.0)
            with pytest.raises(TypeError):
                await ws.send_json({"when": object()})
    assert recorder.counter("messages_sent") == 6
    assert recorder.counter("errors.protocol") == 3


async def test_request_text_sends_and_returns_the_wire_text_timed_like_request() -> None:
    with echo_server() as server:
        ws, recorder = await _open(server.url)
        async with ws:
            reply = await ws.request_text('{"seq":1}', timeout=5.0, metric="round_trip")
            assert reply == '{"seq":1}'
            await ws.send_text('"no sequence number"')
            matched = await ws.request_text(
                b'{"seq":2}', until=lambda raw: str(raw).startswith("{"), timeout=5.0
            )
            assert matched == '{"seq":2}'  # skipped by until, not parsed
            with pytest.raises(MessageTimeout):
                await ws.request_text('{"seq":3,"stall":1.0}', timeout=0.2)
    assert recorder.counter("messages_sent") == 4
    assert recorder.counter("errors") == 0
    assert recorder.counter("timeouts") == 1
    assert recorder.state().rates["success"] == (2, 3)
    for metric in ("round_trip", "response_time"):
        histogram = recorder.histogram(metric)
        assert histogram is not None
        assert histogram.count == 1


async def test_a_session_keeps_its_connection_and_reopens_it_once_closed() -> None:
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    opened: list[int] = []
    session = Session(
        AnonymousIdentities()(0), Recorder(), time.monotonic, {}, on_connection=opened.append
    )
    with echo_server() as server:
        first = await session.connection(server.url)
        assert await session.connection(server.url) is first
        assert (await first.request({"seq": 1}, timeout=5.0))["seq"] == 1
        await first.close()
        second = await session.connection(server.url)
        assert second is not first
        assert not second.closed
        assert (await second.request({"seq": 2}, timeout=5.0))["seq"] == 2
        await session.aclose()
        assert second.closed
    assert opened == [1, -1, 1, -1]
    histogram = session.recorder.histogram("ws_connect")
    assert histogram is not None
    assert histogram.count == 2


async def test_a_session_closes_its_sockets_together() -> None:
    """The target never answers a close frame: one after the other, ten sockets would take
    ten close timeouts to close; together they take one."""
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    async with close_ignoring_server() as server:
        session = Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {})
        sockets = [await session.ws(f"{server.url}?n={n}") for n in range(10)]
        started = time.monotonic()
        async with asyncio.timeout(4 * CLOSE_TIMEOUT_S):
            await session.aclose()
        took = time.monotonic() - started
    assert all(socket.closed for socket in sockets)
    assert [socket.close_code for socket in sockets] == [1000] * 10
    assert server.stats.close_frames == 10
    assert took >= CLOSE_TIMEOUT_S
    assert session.recorder.counter("errors") == 0


async def test_a_sessions_sockets_take_max_unread() -> None:
    """``session.ws`` and ``session.connection`` pass ``max_unread`` to the socket: a burst
    past it closes the socket with ``inbox_overflow``."""
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    session = Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {})
    with echo_server() as server:
        async with session.ws(server.url, max_unread=2) as ws:
            kept = await session.connection(server.url, max_unread=2)
            for socket in (ws, kept):
                await socket.send_json({"burst": ["a", "b", *"c" * 50]})
                assert socket._transport is not None
                async with asyncio.timeout(10.0):  # nothing read meanwhile
                    await socket._transport.wait_disconnected()
                assert await socket.recv(timeout=5.0) == "a"
                assert await socket.recv(timeout=5.0) == "b"
                with pytest.raises(ConnectionClosed, match="2 messages unread"):
                    await socket.recv(timeout=5.0)
        await session.aclose()
    assert session.recorder.counter("errors.inbox_overflow") == 2


async def test_a_sessions_sockets_measure_a_late_iterations_first_request_from_its_start() -> None:
    """The open model's coordinated-omission rule reaches the wire: an iteration that
    began late counts its schedule lag in its first request, the next from its send."""
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    session = Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {})
    with echo_server() as server:
        ws = await session.connection(server.url, auth=False)
        session.begin_iteration(0, schedule_lag=2.0)  # 2 s behind
        await ws.request({"seq": 1}, metric="late", timeout=5.0)
        await ws.request({"seq": 2}, metric="next", timeout=5.0)
        session.begin_iteration(1, schedule_lag=None)  # the closed model
        await ws.request_text('{"seq":3}', metric="next", timeout=5.0)
        await session.aclose()
    late, following = session.recorder.histogram("late"), session.recorder.histogram("next")
    assert late is not None
    assert following is not None
    assert late.min >= 1.99  # 3 significant digits
    assert following.count == 2
    assert following.max < 1.0


async def _upgrade_answered(answer: bytes, recorder: Recorder) -> ConnectError:
    """The error of a connect to a server that answers the upgrade request with ``answer``
    (bytes as sent), then closes."""

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectError) as caught:
            await connect(f"ws://127.0.0.1:{port}/", recorder, time.monotonic, timeout=5.0)
    finally:
        server.close()
        await server.wait_closed()
    return caught.value


async def test_a_server_that_answers_the_upgrade_with_no_http_is_named_so() -> None:
    message = str(await _upgrade_answered(b"SSH-2.0-not-http\r\n\r\n", Recorder()))
    assert "WebSocket upgrade refused (no HTTP response came back: " in message, message
    assert "is it a WebSocket server, on that port?" in message
    assert "None" not in message


async def test_a_server_that_closes_without_answering_the_upgrade_is_a_connect_error() -> None:
    # picows handed back a transport with no response: connect crashed with an
    # AttributeError, after recording a ws_connect sample as if the socket had opened.
    recorder = Recorder()
    message = str(await _upgrade_answered(b"", recorder))
    assert "the connection closed before the WebSocket upgrade was answered" in message
    assert recorder.histogram("ws_connect") is None


async def test_wss_to_a_plain_server_names_the_tls_handshake_once_per_socket() -> None:
    # The reason was empty ("cannot connect: ; is the target listening?") and picows' TLS
    # transport sent each failure to the loop's exception handler too, whose traceback the
    # logging module could not format: a screen of "--- Logging error ---" per socket.
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    recorder = Recorder()
    try:
        with echo_server() as server:
            url = server.url.replace("ws://", "wss://")
            for _ in range(2):
                with pytest.raises(ConnectError) as caught:
                    await connect(url, recorder, time.monotonic, timeout=5.0)
                message = str(caught.value)
                assert "the TLS handshake failed (" in message, message
                assert "A plain WebSocket server takes ws://" in message
        # Other reports still reach the handler that was there.
        loop.call_exception_handler({"message": "something else"})
    finally:
        loop.set_exception_handler(None)
    assert [context["message"] for context in reported] == ["something else"]
    assert recorder.counter("errors.connect") == 2


@contextlib.asynccontextmanager
async def _sending_on_connect(frame: bytes, *, text: bool) -> AsyncIterator[tuple[str, list[int]]]:
    """A server that sends ``frame`` as soon as a socket opens; yields its URL and the close
    codes it received."""
    codes: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await connection.send(frame, text=text)
            await connection.wait_closed()
        if connection.protocol.close_rcvd is not None:
            codes.append(connection.protocol.close_rcvd.code)

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", codes


def _unretrieved_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """What the loop's exception handler gets from now on (asyncio prints each with a
    traceback: a future whose error nobody took, say)."""
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: seen.append(context))
    return seen


async def test_a_text_frame_that_is_not_utf8_is_named_and_closes_the_socket_with_1007() -> None:
    seen = _unretrieved_errors(asyncio.get_running_loop())
    async with _sending_on_connect(b'\xff\xfe{"type": "x"}', text=True) as (url, codes):
        ws, recorder = await _open(url)
        with pytest.raises(ConnectionClosed, match=r"code 1007"):
            await ws.recv(timeout=10.0)
        await ws.close()
    assert ws.close_code == 1007
    assert codes == [1007]
    (sample,) = recorder.state().error_samples["protocol"]
    assert "the target sent a text frame that is not valid UTF-8" in sample
    assert recorder.counter("errors") == 1  # not errors.closed as well
    assert "it begins b'\\xff\\xfe{" in sample
    del ws
    gc.collect()
    assert seen == []


def _upgrade_answer(request: str) -> bytes:
    """The 101 answer to a WebSocket upgrade ``request``."""
    key = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", request)
    assert key is not None
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    accept = base64.b64encode(hashlib.sha1(key[1].encode() + guid).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("extra", "subprotocols", "refused"),
    [
        (
            b"Sec-WebSocket-Protocol: evil\r\n",
            ["bearer", "secret-token"],
            "chose subprotocol 'evil', which this client did not offer (2 offered)",
        ),
        (b"Sec-WebSocket-Protocol: evil\r\n", [], "which this client offered none"),
        (b"Sec-WebSocket-Extensions: permessage-deflate\r\n", [], "'permessage-deflate'"),
        (b"Sec-WebSocket-Protocol: bearer\r\n", ["bearer", "tok"], None),
    ],
)
async def test_an_upgrade_answer_agreeing_to_what_was_not_offered_is_refused(
    extra: bytes, subprotocols: list[str], refused: str | None
) -> None:
    # Taken as opened: a compressed frame would then read as garbage (RFC 6455 4.1).
    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        writer.write(_upgrade_answer(request)[:-2] + extra + b"\r\n")
        await writer.drain()
        with contextlib.suppress(OSError):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(answering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    recorder = Recorder()
    url = f"ws://127.0.0.1:{port}/"
    try:
        if refused is None:
            # Offered through headers (an adapter's headers() has no other way), not
            # subprotocols: offered all the same.
            offer = {"Sec-WebSocket-Protocol": ", ".join(subprotocols)}
            ws = await connect(url, recorder, time.monotonic, headers=offer, timeout=5.0)
            assert ws.subprotocol == "bearer"
            await ws.close(timeout=1.0)
            return
        with pytest.raises(ConnectError, match=re.escape(refused)) as raised:
            await connect(url, recorder, time.monotonic, subprotocols=subprotocols, timeout=5.0)
        assert "secret-token" not in str(raised.value)
    finally:
        server.close()
        await server.wait_closed()
    assert recorder.histogram("ws_connect") is None
    assert recorder.counter("errors.connect") == 1


async def _close_code_sent(reader: asyncio.StreamReader) -> int | None:
    """The status code of the client's next frame, a close (masked, as a client's are)."""
    head = await reader.readexactly(2)
    assert head[0] == 0x88, head
    mask = await reader.readexactly(4)
    payload = await reader.readexactly(head[1] & 0x7F)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def _text_frame(payload: bytes) -> bytes:
    """One unmasked server text frame (payload under 126 bytes)."""
    return bytes([0x81, len(payload)]) + payload


@contextlib.asynccontextmanager
async def _upgrading(then: bytes) -> AsyncIterator[tuple[str, asyncio.Future[int | None]]]:
    """A raw server that answers the upgrade and sends ``then`` in the same write; yields
    its URL and the status code of the close the client then sends."""
    answered: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def upgrading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        writer.write(_upgrade_answer(request) + then)
        await writer.drain()
        answered.set_result(await _close_code_sent(reader))
        writer.close()

    server = await asyncio.start_server(upgrading, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", answered
    finally:
        server.close()
        await server.wait_closed()


async def test_no_frame_after_one_that_is_not_utf8_is_read_as_a_message() -> None:
    # The frames that came in the same read as the bad one were delivered after the
    # socket had closed on it: one completed a chat, as if the target had answered.
    bad_then_good = _text_frame(b'{"a": "\xff"}') + _text_frame(b'{"after": "the bad one"}')
    async with _upgrading(bad_then_good) as (url, answered):
        ws, recorder = await _open(url)
        with pytest.raises(ConnectionClosed, match=r"code 1007"):
            await ws.recv(timeout=10.0)
        assert await asyncio.wait_for(answered, 10) == 1007
    assert recorder.counter("messages_received") == 0


async def test_a_socket_the_target_closes_as_it_opens_is_no_open_connection() -> None:
    # The close came with the upgrade's answer (a socket refused at admission): the socket
    # closed before the session took it for open, and the run's connections gauge kept it
    # open for good.
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    reason = b"too_many_sockets"
    refusal = bytes([0x88, 2 + len(reason)]) + struct.pack("!H", 1008) + reason
    opened: list[int] = []
    session = Session(
        AnonymousIdentities()(0), Recorder(), time.monotonic, {}, on_connection=opened.append
    )
    async with _upgrading(refusal) as (url, answered):
        ws = await session.ws(url)
        assert await asyncio.wait_for(answered, 10) == 1008
        with pytest.raises(ConnectionClosed, match=r"code 1008, reason 'too_many_sockets'"):
            await ws.recv(timeout=10.0)
    await session.aclose()
    assert sum(opened) == 0, opened


async def test_a_close_with_no_status_code_reads_1005_and_is_answered_with_1000() -> None:
    # Its code read 0 ("connection closed (code 0 ...)") and squall answered with a 0 on
    # the wire, which no endpoint may send.
    async with _upgrading(b"\x88\x00") as (url, answered):  # a close with no payload
        ws, _ = await _open(url)
        with pytest.raises(ConnectionClosed, match=r"code 1005"):
            await ws.recv(timeout=10.0)
        assert await asyncio.wait_for(answered, 10) == 1000
    assert ws.close_code == 1005


async def test_a_frame_over_the_frame_size_limit_is_named_not_taken_for_a_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = _unretrieved_errors(asyncio.get_running_loop())
    big = b"x" * (10 * 2**20 + 1)  # picows' frame size limit is 10 MiB
    async with _sending_on_connect(big, text=True) as (url, _):
        # picows sends its close at once but drops the connection 10 ms later, reading on
        # meanwhile: on a warm loop the rest of the frame arrives within that time, and
        # picows hands it over whole. Several sockets, so a frame taken as a message shows.
        for _ in range(4):
            ws, recorder = await _open(url)
            with pytest.raises(ConnectionClosed, match=r"code 1009"):
                await ws.recv(timeout=30.0)
            assert ws.close_code == 1009
            (sample,) = recorder.state().error_samples["protocol"]
            assert "the target broke the WebSocket protocol (" in sample
            assert (
                "exceeding max allowed size, 10485761 > 10485760): socket closed (1009)" in sample
            )
            assert recorder.state().counters.get("messages_received", 0) == 0
            assert recorder.counter("errors") == 1  # not errors.closed as well
    # Recorded once above, not also logged by picows for every socket it happens to.
    assert [r.getMessage() for r in caplog.records if "exceeding max" in r.getMessage()] == []
    del ws
    gc.collect()
    assert seen == []


async def test_a_message_in_fragments_past_the_limit_closes_the_socket_1009() -> None:
    # picows' limit is per frame: fragments of 1 MiB that never ended grew the generator
    # by gigabytes, seen only as timeouts.
    async def handler(connection: ServerConnection) -> None:
        def chunks() -> Iterator[str]:
            for _ in range(MAX_MESSAGE_BYTES // 2**20 + 5):
                yield "x" * 2**20

        with contextlib.suppress(websockets.ConnectionClosed):
            await connection.send(chunks())

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ws, recorder = await _open(f"ws://127.0.0.1:{port}/")
        with pytest.raises(ConnectionClosed, match=r"code 1009"):
            await ws.recv(timeout=30.0)
    assert ws.close_code == 1009
    (sample,) = recorder.state().error_samples["protocol"]
    assert sample.endswith(
        f"in fragments, past the limit of {MAX_MESSAGE_BYTES:,}: socket closed (1009)"
    )
    assert recorder.state().counters.get("messages_received", 0) == 0
    assert recorder.counter("errors") == 1  # not errors.closed as well


async def test_a_close_code_is_the_side_that_closed_first() -> None:
    async with _sending_on_connect(b"{}", text=True) as (url, codes):
        ws, _ = await _open(url)
        assert await ws.recv(timeout=10.0) == "{}"
        await ws.close(4000, "done here")
    assert (ws.close_code, ws.close_reason) == (4000, "done here")
    assert codes == [4000]

    async def closing(connection: ServerConnection) -> None:
        await connection.close(4409, "replaced")

    async with serve(closing, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ws, recorder = await _open(f"ws://127.0.0.1:{port}/")
        with pytest.raises(ConnectionClosed, match=r"code 4409, reason 'replaced'"):
            await ws.recv(timeout=10.0)
    assert "protocol" not in recorder.state().error_samples


async def test_an_upgrade_redirect_is_not_followed_and_names_where_it_pointed() -> None:
    with echo_server() as target:
        found = f"HTTP/1.1 302 Found\r\nLocation: {target.url}\r\nContent-Length: 0\r\n\r\n"
        recorder = Recorder()
        refused = await _upgrade_answered(found.encode(), recorder)
        # A redirect could point anywhere, off this machine too: it is never followed.
        assert target.stats.connections == 0
    assert refused.status == 302
    message = str(refused)
    assert f"WebSocket upgrade refused (HTTP 302, a redirect to '{target.url}'" in message
    assert "squall does not follow redirects" in message
    assert recorder.counter("errors.connect") == 1


async def test_a_connection_reset_is_named_a_drop_without_a_close_frame() -> None:
    async def reset(connection: ServerConnection) -> None:
        await connection.recv()
        raw = connection.transport.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.transport.abort()  # with SO_LINGER 0: a TCP reset

    async with serve(reset, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ws, recorder = await _open(f"ws://127.0.0.1:{port}/")
        with pytest.raises(ConnectionClosed) as caught:
            await ws.request({"seq": 1}, timeout=10.0)
    assert caught.value.code == 1006
    assert "connection dropped without a close frame (code 1006: reset or ended by the " in str(
        caught.value
    )
    assert recorder.counter("errors.closed") == 1


async def test_a_close_cut_short_and_called_again_sends_one_close_frame() -> None:
    """RFC 6455 allows one close frame per side: a close whose wait was cancelled, called
    again (as the end of a run does for a user whose own close was cut short), only waits
    (picows sends a transport's close frame once)."""
    from squall.engine.identity import AnonymousIdentities
    from squall.engine.session import Session

    async with close_ignoring_server() as server:
        session = Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {})
        ws = await session.connection(server.url)
        first = asyncio.create_task(ws.close())
        for _ in range(500):
            await asyncio.sleep(0.01)
            if server.stats.close_frames:
                break
        assert server.stats.close_frames == 1
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert not ws.closed
        await ws.close(timeout=0.2)
        assert ws.closed
        await asyncio.sleep(0.1)  # a second close frame, had one gone out, is read by now
    assert server.stats.close_frames == 1
    assert session.recorder.counter("errors") == 0
