"""``Inbox`` and ``Gate``: the stand-ins for uvicorn's per-socket queue and event, one loop."""

from __future__ import annotations

import asyncio

import pytest

from squall.target.server import Gate, Inbox

WAIT_S = 5.0


async def settle() -> None:
    """Let every ready callback run (a few loop steps; nothing here sleeps)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_inbox_hands_messages_to_its_reader_in_order() -> None:
    inbox = Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await settle()
    assert not reader.done()  # nothing to read yet: the reader waits
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    assert not inbox.empty()
    async with asyncio.timeout(WAIT_S):
        first = await reader
        second = await inbox.get()
    assert [first["type"], second["type"]] == ["websocket.connect", "websocket.receive"]
    assert inbox.empty()


async def test_inbox_refuses_a_second_reader_by_name() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await settle()
    with pytest.raises(RuntimeError, match="only one may await receive"):
        await inbox.get()
    reader.cancel()
    await settle()
    assert reader.cancelled()


async def test_a_cancelled_read_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await settle()
    reader.cancel()
    await settle()
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    async with asyncio.timeout(WAIT_S):
        message = await inbox.get()
    assert message == {"type": "websocket.disconnect", "code": 1000}


async def test_gate_holds_senders_while_closed_and_releases_them_all() -> None:
    gate = Gate()
    assert gate.is_set()
    async with asyncio.timeout(WAIT_S):
        assert await gate.wait()  # open: no wait at all
    gate.clear()
    senders = [asyncio.create_task(gate.wait()) for _ in range(3)]
    gone = asyncio.create_task(gate.wait())
    await settle()
    assert not any(s.done() for s in senders)
    gone.cancel()  # a sender cancelled while it waits is skipped, not woken
    await settle()
    gate.set()
    async with asyncio.timeout(WAIT_S):
        assert await asyncio.gather(*senders) == [True, True, True]
    assert gone.cancelled()
    assert gate.is_set()
