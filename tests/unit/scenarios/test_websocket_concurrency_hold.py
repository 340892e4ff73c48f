"""websocket_concurrency keeps every socket open until the last batch is in."""

from __future__ import annotations

import pytest

from squall.engine.identity import Identity, UserID
from squall.engine.session import Session
from squall.metrics.recorder import Recorder
from squall.scenarios import websocket_concurrency
from squall.scenarios.target import TargetInfo

TARGET = TargetInfo(ws_url="ws://127.0.0.1:9/v1/ws", http_url="http://127.0.0.1:9", jwt_secret="")


def _session(index: int, params: dict[str, object], now: float) -> Session:
    identity = Identity(UserID(f"u-{index}"), None, index)
    return Session(identity, Recorder(), lambda: now, params)


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, 2.5), (24, 2.5), (25, 1.5), (50, 0.5), (74, 0.5)],
)
def test_each_batch_holds_until_the_last_one_started_and_half_an_interval(
    index: int, expected: float
) -> None:
    params = websocket_concurrency.build(TARGET).params
    assert (params["batch"], params["interval_s"], params["ramp_end_s"]) == (25, 1.0, 2.0)
    # A user that started at 100.0 and is done with its messages at once.
    assert websocket_concurrency.hold_s(_session(index, dict(params), 100.0), 100.0) == expected


def test_a_user_done_after_the_hold_leaves_at_once() -> None:
    params = dict(websocket_concurrency.build(TARGET).params)
    assert websocket_concurrency.hold_s(_session(0, params, 105.0), 100.0) == 0.0


def test_the_hold_follows_the_scaled_ramp() -> None:
    params = websocket_concurrency.build(TARGET, scale=0.1).params
    # 8 users in batches of 2: the last batch starts 3 s in.
    assert (params["batch"], params["ramp_end_s"]) == (2, 3.0)
