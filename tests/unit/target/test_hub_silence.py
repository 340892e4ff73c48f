"""When the hub pings a quiet pub/sub connection, and when it gives the connection up."""

from __future__ import annotations

import pytest

from squall.target.hub import QUIET_S, READ_S, Silence


def test_a_quiet_connection_is_pinged_then_lost_if_nothing_answers() -> None:
    silence = Silence(timeout_s=0.5, now=100.0)
    assert silence.wait(100.0) == min(READ_S, QUIET_S)
    assert not silence.ping_due(100.0 + QUIET_S - 0.01)
    assert silence.ping_due(100.0 + QUIET_S)
    silence.pinged(101.0)
    assert not silence.ping_due(105.0)  # one PING at a time
    assert silence.wait(101.2) == pytest.approx(0.3)  # reads wake when the timeout ends
    assert not silence.lost(101.49)
    assert silence.lost(101.5)


def test_anything_heard_keeps_the_connection_alive() -> None:
    silence = Silence(timeout_s=0.5, now=100.0)
    silence.pinged(101.0)
    silence.heard(101.4)  # the pong, or any other message
    assert not silence.lost(110.0)
    assert silence.ping_due(101.4 + QUIET_S)
    assert silence.wait(200.0) == 0.0
