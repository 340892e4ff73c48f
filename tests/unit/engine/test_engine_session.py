"""The session's own state, without sockets."""

from __future__ import annotations

import time

from squall.engine.identity import AnonymousIdentities
from squall.engine.session import Session
from squall.metrics.recorder import Recorder


def _session() -> Session:
    return Session(AnonymousIdentities()(0), Recorder(), time.monotonic, {"url": "ws://x"})


def test_a_behaviour_may_keep_attributes_of_its_own_on_the_session() -> None:
    session = _session()
    session.thread_id = "t-1"  # type: ignore[attr-defined]
    session.state["seen"] = 3
    assert session.thread_id == "t-1"  # type: ignore[attr-defined]
    assert session.state == {"seen": 3}
    assert session.params["url"] == "ws://x"


def test_begin_iteration_counts_and_sets_the_pending_origin() -> None:
    session = _session()
    session.begin_iteration(0, intended_start=1.5)
    assert (session.iteration, session.iterations_started) == (0, 1)
    assert session.origin.pending == 1.5
    assert session.take_origin(2.0) == 1.5
    assert session.origin.pending is None
    session.begin_iteration(1, intended_start=None)
    assert (session.iteration, session.iterations_started) == (1, 2)
    assert session.take_origin(3.0) == 3.0
