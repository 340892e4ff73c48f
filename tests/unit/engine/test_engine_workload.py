"""Workload schedules are pure: start offsets, arrival times, stage targets."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from squall.engine.workload import (
    MAX_ARRIVALS,
    ArrivalRate,
    WorkloadError,
    batches,
    closed,
    linear,
    open_rate,
    partition,
    ramping_rate,
    stages,
)


def test_batches_of_25_for_75_users_start_in_three_waves() -> None:
    workload = closed(75, batches(25, 2.0), iterations=15)
    offsets = workload.start_offsets()
    assert offsets[:25] == [0.0] * 25
    assert offsets[25:50] == [2.0] * 25
    assert offsets[50:] == [4.0] * 25


def test_linear_ramp_spreads_users_evenly_from_zero() -> None:
    workload = closed(4, linear(2.0), duration=10)
    assert workload.start_offsets() == [0.0, 0.5, 1.0, 1.5]


def test_immediate_start_when_no_ramp() -> None:
    assert closed(3, iterations=1).start_offsets() == [0.0, 0.0, 0.0]


def test_closed_needs_a_bound() -> None:
    with pytest.raises(WorkloadError, match="iterations= or duration="):
        closed(10)
    with pytest.raises(
        WorkloadError, match=re.escape("closed(users)=0 must be a whole number >= 1")
    ):
        closed(0, iterations=1)
    with pytest.raises(WorkloadError, match=re.escape("batches(size)=0")):
        batches(0, 1.0)


def test_constant_arrival_rate_is_evenly_spaced() -> None:
    times = list(open_rate(10, 2.0, max_users=5).arrival_times())
    assert len(times) == 20
    assert times[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert times[-1] == pytest.approx(1.9)


def test_ramping_rate_follows_the_integral_of_the_rate() -> None:
    # From 0 to 10/s over 2 s: integral 10 iterations; iteration k at sqrt(2k/5).
    workload = ramping_rate([(10, 2.0)], start_rate=0, max_users=10)
    times = list(workload.arrival_times())
    assert len(times) == 10
    assert times == pytest.approx([(2 * k / 5) ** 0.5 for k in range(10)])
    # Gaps shrink as the rate grows.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(later < earlier for earlier, later in itertools.pairwise(gaps))


def test_ramping_rate_over_several_stages() -> None:
    # 10/s constant for 1 s, then ramp 10 -> 0 over 1 s (5 more), then nothing.
    workload = ramping_rate([(10, 1.0), (0, 1.0), (0, 1.0)], start_rate=10, max_users=3)
    times = list(workload.arrival_times())
    assert len(times) == 15
    assert times[:10] == pytest.approx([k / 10 for k in range(10)])
    assert all(1.0 <= t < 2.0 for t in times[10:])
    assert workload.planned_duration == 3.0
    assert workload.rate_at(1.5) == pytest.approx(5.0)
    assert workload.rate_at(5.0) == 0.0


@pytest.mark.parametrize(
    "workload",
    [
        open_rate(10, 2.0, max_users=5),
        open_rate(7.3, 1.1, max_users=5),
        ramping_rate([(10, 2.0)], start_rate=0, max_users=10),
        ramping_rate([(10, 1.0), (0, 1.0), (0, 1.0)], start_rate=10, max_users=3),
        ramping_rate([(0, 0.5), (25, 1.5), (3, 0.7)], start_rate=4, max_users=3),
    ],
    ids=repr,
)
def test_closed_forms_agree_with_the_listed_arrivals(workload: ArrivalRate) -> None:
    times = list(workload.arrival_times())
    assert workload.planned_arrivals == len(times) > 0
    assert [workload.arrival_time(k) for k in range(len(times))] == times
    probes = [-1.0, *times, *(t + 1e-6 for t in times), workload.planned_duration + 1]
    for t in probes:
        assert workload.arrivals_by(t) == sum(1 for arrival in times if arrival <= t), t
    with pytest.raises(IndexError):
        workload.arrival_time(len(times))


@pytest.mark.timeout(10)
def test_a_huge_rate_is_computed_not_listed() -> None:
    # Ten trillion arrivals: listing them would take days, each answer here is immediate.
    rate, duration = 1e12, 10.0
    workload = open_rate(rate, duration, max_users=2)
    planned = workload.planned_arrivals
    assert planned == rate * duration
    assert workload.arrival_time(0) == 0.0
    assert workload.arrival_time(planned // 2) == pytest.approx(duration / 2)
    assert duration - 2 / rate < workload.arrival_time(planned - 1) < duration
    assert workload.arrivals_by(duration / 4) == pytest.approx(planned / 4, abs=1)
    assert workload.arrivals_by(duration) == planned
    assert workload.describe()["stages"] == [[rate, duration]]


def test_a_plan_of_more_than_max_arrivals_is_refused_with_the_fix() -> None:
    open_rate(MAX_ARRIVALS / 100, 100.0, max_users=1)  # exactly the bound
    with pytest.raises(WorkloadError) as caught:
        open_rate(1e12, 2000.0, max_users=1)
    message = str(caught.value)
    assert "up to 1e+12/s over 2000 s plans 2e+15 iterations" in message
    assert "lower the rate (it is per second) or the duration" in message
    with pytest.raises(WorkloadError, match="plans inf iterations"):
        ramping_rate([(1e300, 1e300)], max_users=1)


def test_arrival_rate_validation() -> None:
    with pytest.raises(WorkloadError, match="max_users"):
        open_rate(10, 1.0, max_users=0)
    with pytest.raises(WorkloadError, match="at least one"):
        ArrivalRate((), 0.0, 1)


def test_stages_interpolate_user_targets() -> None:
    workload = stages([(10, 10.0), (10, 5.0), (0, 5.0)])
    assert workload.target_users(0.0) == 0
    assert workload.target_users(5.0) == 5
    assert workload.target_users(10.0) == 10
    assert workload.target_users(14.9) == 10
    assert workload.target_users(17.5) == 5
    assert workload.target_users(20.0) == 0
    assert workload.max_users == 10
    assert workload.planned_duration == 20.0


def test_partition_covers_every_user_once() -> None:
    ranges = partition(75, 2)
    assert [len(r) for r in ranges] == [38, 37]
    assert [i for r in ranges for i in r] == list(range(75))
    assert partition(1, 3)[0] == range(0, 1)
    with pytest.raises(WorkloadError):
        partition(5, 0)


def test_describe_is_plain_data() -> None:
    assert closed(75, batches(25, 1.0), iterations=15).describe() == {
        "model": "closed",
        "users": 75,
        "ramp": {"kind": "batches", "size": 25, "interval": 1.0},
        "iterations": 15,
        "duration": None,
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # Infinite durations, ramps and rates: the run would never end by itself.
        (lambda: closed(1, duration=math.inf), "closed(duration)=inf must be a finite number > 0"),
        (lambda: closed(2, linear(math.inf), iterations=1), "linear(seconds)=inf"),
        (lambda: closed(2, batches(1, math.inf), iterations=1), "batches(interval)=inf"),
        (lambda: open_rate(math.inf, 1.0, 1), "open_rate(rate_per_s)=inf"),
        (lambda: open_rate(1.0, math.inf, 1), "stage duration=inf must be a finite number > 0"),
        (lambda: stages([(1, math.inf)]), "stage duration=inf"),
        (lambda: ramping_rate([(1.0, 1.0)], start_rate=math.inf), "start_rate=inf"),
        # Counts that are not whole numbers.
        (lambda: closed(2.5, iterations=1), "closed(users)=2.5 must be a whole number >= 1"),
        (lambda: closed(True, iterations=1), "closed(users)=True must be a whole number >= 1"),
        (lambda: closed(1, iterations=1.5), "closed(iterations)=1.5 must be a whole number"),
        (lambda: open_rate(1.0, 1.0, max_users=2.5), "max_users=2.5 must be a whole number"),
        (lambda: stages([(math.nan, 1.0)]), "stage target_users=nan must be a whole number >= 0"),
        (lambda: stages([(math.inf, 1.0)]), "stage target_users=inf must be a whole number >= 0"),
        (lambda: stages([(2.5, 1.0)]), "stage target_users=2.5 must be a whole number >= 0"),
    ],
)
def test_a_workload_that_could_not_end_or_count_is_refused_by_name(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(WorkloadError, match=re.escape(message)):
        make()


def test_a_whole_float_is_a_stage_target() -> None:
    assert stages([(2.0, 1.0)]).stages == ((2, 1.0),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # A number where a ramp goes: the run failed in its first second.
        (lambda: closed(5, ramp=5, iterations=1), "closed(ramp=5): expected linear(seconds)"),  # type: ignore[arg-type]
        (lambda: stages([2, 5]), "stages() takes a list of (target_users, seconds) pairs; got 2"),  # type: ignore[list-item]
        (lambda: ramping_rate([10, 1]), "ramping_rate() takes a list of (rate, seconds) pairs"),  # type: ignore[list-item]
        (lambda: stages("ab"), "stages() takes a list of (target_users, seconds) pairs; got 'ab'"),  # type: ignore[arg-type]
        (lambda: stages([(1, 2, 3)]), "got (1, 2, 3) among them"),  # type: ignore[list-item]
    ],
)
def test_a_workload_of_the_wrong_shape_is_named_when_made(make: Any, message: str) -> None:
    with pytest.raises(WorkloadError, match=re.escape(message)):
        make()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workload": (1, 2)}, "workload=(1, 2) is not a workload; make one with closed()"),
        ({"graceful_stop_s": -1}, "graceful_stop_s=-1 must be a number of seconds >= 0"),
        ({"graceful_stop_s": float("nan")}, "graceful_stop_s=nan must be"),
    ],
)
def test_a_scenario_of_the_wrong_shape_is_named_when_made(
    fields: dict[str, Any], message: str
) -> None:
    from squall.engine import Scenario
    from squall.engine.errors import ScenarioError

    given = {"workload": closed(1, iterations=1), **fields}
    with pytest.raises(ScenarioError, match=re.escape(message)):
        Scenario("shape", "mod:behaviour", **given)
