"""The engine opens no socket to a host off this machine: the connect error says why."""

from __future__ import annotations

import time

import pytest

from squall.engine.client import connect
from squall.engine.errors import ConnectError
from squall.metrics.recorder import Recorder


async def test_a_websocket_url_off_this_machine_is_refused_and_recorded() -> None:
    recorder = Recorder()
    with pytest.raises(ConnectError) as caught:
        await connect("ws://192.0.2.7:8765/v1/ws", recorder, time.monotonic, timeout=30.0)
    message = str(caught.value)
    assert message.startswith("ws://192.0.2.7:8765/v1/ws: host 192.0.2.7 is not a loopback")
    assert "127.0.0.1 or localhost" in message
    state = recorder.state()
    assert state.counters.get("errors") == 1
    assert "ws_connect" not in state.trends  # refused before any connection attempt


@pytest.mark.parametrize("max_unread", [0, -1, 2.5])
async def test_an_unusable_max_unread_is_refused_before_connecting(max_unread: object) -> None:
    with pytest.raises(ValueError, match=r"max_unread=.*expected a positive number of messages"):
        await connect(
            "ws://127.0.0.1:9/v1/ws",
            Recorder(),
            time.monotonic,
            max_unread=max_unread,  # type: ignore[arg-type]
        )
