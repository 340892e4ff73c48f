"""Coordinated omission, simulated without sockets.

A target freezes for 2 s. In the open model iterations keep arriving on
schedule and their first request is measured from its send less the iteration's
schedule lag, so everything that arrived during the freeze reports the wait. A
closed-model user waits for each reply before sending the next request and
measures from its actual send, so the freeze shows up as a single slow sample and p99 hides it.
"""

from __future__ import annotations

from squall.engine.identity import AnonymousIdentities
from squall.engine.session import Session
from squall.engine.workload import open_rate
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.recorder import Recorder

SERVICE_S = 0.001
STALL_START, STALL_END = 10.0, 12.0
DURATION = 20.0


def completion(send: float) -> float:
    """The frozen target answers nothing between STALL_START and STALL_END."""
    done = send + SERVICE_S
    if done >= STALL_START and send < STALL_END:
        return STALL_END + SERVICE_S
    return done


def open_model_p99() -> float:
    histogram = LatencyHistogram()
    session = Session(AnonymousIdentities()(0), Recorder(), clock=lambda: 0.0, params={})
    for n, intended in enumerate(open_rate(100, DURATION, max_users=1000).arrival_times()):
        # The generator itself is also late during the freeze (the iteration begins when
        # a slot is free); latency still counts from the intended start.
        actual_send = intended if not STALL_START <= intended < STALL_END else STALL_END
        session.begin_iteration(n, actual_send - intended)
        origin = session.take_origin(actual_send)
        histogram.record(completion(actual_send) - origin)
    return histogram.percentile(99)


def closed_model_p99() -> float:
    histogram = LatencyHistogram()
    session = Session(AnonymousIdentities()(0), Recorder(), clock=lambda: 0.0, params={})
    now, n = 0.0, 0
    while now < DURATION:
        session.begin_iteration(n, None)
        origin = session.take_origin(now)
        done = completion(now)
        histogram.record(done - origin)
        now, n = done, n + 1
    return histogram.percentile(99)


def test_stall_raises_open_model_p99_but_hides_in_closed_model() -> None:
    open_p99 = open_model_p99()
    closed_p99 = closed_model_p99()
    assert open_p99 > 1.5  # most of the 200 requests due in the freeze waited > 1.5 s
    assert closed_p99 < 0.01  # one slow sample among ~18 000
    assert open_p99 > 100 * closed_p99


def test_take_origin_counts_the_schedule_lag_once_per_iteration() -> None:
    session = Session(AnonymousIdentities()(0), Recorder(), clock=lambda: 0.0, params={})
    session.begin_iteration(0, schedule_lag=2.0)
    assert session.take_origin(7.0) == 5.0
    assert session.take_origin(8.0) == 8.0
    session.begin_iteration(1, schedule_lag=None)
    assert session.take_origin(9.0) == 9.0


def test_the_behaviours_own_time_before_its_first_request_is_not_latency() -> None:
    # An open-model iteration begun on time that thinks (or connects) for 0.3 s before its
    # first request: the request's latency was measured from the intended start, so the
    # 0.3 s of think time read as response time.
    session = Session(AnonymousIdentities()(0), Recorder(), clock=lambda: 0.0, params={})
    session.begin_iteration(0, schedule_lag=0.0)
    assert session.take_origin(10.3) == 10.3
    session.begin_iteration(1, schedule_lag=0.25)  # began 0.25 s late, then thought 0.3 s
    assert session.take_origin(20.55) == 20.3
