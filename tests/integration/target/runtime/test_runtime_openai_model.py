"""The OpenAI-compatible backend against a tiny real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runtime_support import Recorder, StartRuntime

from squall.target.ids import ThreadID, UserID

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
DELTAS = ["Hello", " there", ", friend", "."]


class FakeCompletions:
    """Answers ``POST /v1/chat/completions`` with a server-sent-event stream (or ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        #: How a 200 answer misbehaves (None: it does not); see ``handle``.
        self.fault: str | None = None
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *header_lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.requests.append((request_line, headers, body))
        kind = b"application/json" if self.fault == "not_sse" else b"text/event-stream"
        if self.status != 200:
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom")
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nConnection: close\r\n\r\n"
            )
            if self.fault == "not_sse":
                writer.write(json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode())
            for delta in DELTAS if self.fault != "not_sse" else ():
                chunk = {"choices": [{"index": 0, "delta": {"content": delta}}]}
                writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if self.fault == "error_event":
                    writer.write(b'data: {"error": {"message": "overloaded"}}\n\n')
                if self.fault == "bad_chunk":
                    writer.write(b'data: {"choices": {"0": 1}}\n\n')
            if self.fault != "truncated":
                writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[FakeCompletions, str]]:
    fake = FakeCompletions()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield fake, f"http://127.0.0.1:{port}/v1"
    server.close()
    await server.wait_closed()


async def test_streams_completion_into_events(
    start_runtime: StartRuntime, recorder: Recorder, fake_server: tuple[FakeCompletions, str]
) -> None:
    fake, url = fake_server
    runtime = await start_runtime(
        model="openai", openai_base_url=url, openai_api_key="k-123", stream_chunk_tokens=2
    )
    await runtime.submit(ALICE, ThreadID("t"), "greet me", "c1")
    await recorder.wait_completed(1)
    [(request_line, headers, body)] = fake.requests
    assert request_line == "POST /v1/chat/completions HTTP/1.1"
    assert headers["authorization"] == "Bearer k-123"
    assert body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "greet me"}
    assert body["messages"][0]["role"] == "system"
    thinking = [e["text"] for e in recorder.of_type("agent_thinking")]
    assert "".join(thinking) == "Hello there, friend."
    assert len(thinking) >= 2
    [done] = recorder.of_type("agent_completed")
    assert (done["status"], done["content"], done["charge"]) == (
        "completed",
        "Hello there, friend.",
        1,
    )


@pytest.mark.parametrize("fault", ["http_500", "truncated", "error_event", "not_sse", "bad_chunk"])
async def test_a_backend_error_or_an_answer_cut_short_fails_and_refunds_the_run(
    start_runtime: StartRuntime,
    recorder: Recorder,
    fake_server: tuple[FakeCompletions, str],
    fault: str,
) -> None:
    # A body that ended before [DONE], an error streamed as a chunk and a JSON answer to a
    # streamed request were runs "completed" and charged (with half an answer or none).
    fake, url = fake_server
    fake.fault = fault
    fake.status = 500 if fault == "http_500" else 200
    runtime = await start_runtime(model="openai", openai_base_url=url)
    await runtime.submit(ALICE, ThreadID("t"), "greet me", "c1")
    await recorder.wait_completed(1)
    [done] = recorder.of_type("agent_completed")
    assert (done["status"], done["charge"]) == ("failed", 0)
    assert (await runtime.account(ALICE))["balance"] == runtime.settings.initial_credits
