"""Workload models as pure schedules: when users start, when iterations arrive.

Nothing here sleeps or touches an event loop; the runner asks these objects
"at what offset does user *i* start?" or "when does iteration *k* arrive?" and
does the waiting itself, so the schedules are tested with plain numbers.

Three models, named after k6's executors:

* :func:`closed` — a fixed number of users, each running iterations back to
  back (``iterations`` per user and/or for ``duration`` seconds), started all at
  once, linearly over a ramp, or in batches.
* :func:`open_rate` / :func:`ramping_rate` — iterations *arrive* at scheduled
  times whatever the target does; each runs on an idle user, up to
  ``max_users``; an arrival with no user free is dropped and counted.
* :func:`stages` — the number of concurrent users follows a piecewise-linear
  target over time.
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

#: The most iterations an arrival-rate workload may plan in all (rate × duration): far more
#: than a run can start, and below 2**53, so that every arrival's index is exact as a float.
MAX_ARRIVALS = 10**15


class WorkloadError(ValueError):
    """A workload is not well-formed; the message names the value and the fix."""


class Model(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    STAGES = "stages"


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """A duration or rate: a finite number (an infinite one would never let the run end)."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise WorkloadError(f"{name}={value!r} must be a finite number {bound}")


def _count(name: str, value: object, minimum: int) -> None:
    """A number of users or iterations: a whole number (``True`` and ``2.5`` are not)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise WorkloadError(f"{name}={value!r} must be a whole number >= {minimum}")


def _whole(name: str, value: float) -> int:
    """``value`` as an int when it is a whole number, ``2.0`` included; checked by ``_count``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    _count(name, value, 0)
    return int(value)


@dataclass(frozen=True)
class Immediate:
    """Every user starts at once."""

    def offset(self, index: int, users: int) -> float:
        return 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "immediate"}


@dataclass(frozen=True)
class LinearRamp:
    """Users start evenly spread over ``seconds``: user *i* of *n* at ``i * seconds / n``."""

    seconds: float

    def __post_init__(self) -> None:
        _positive("linear(seconds)", self.seconds, allow_zero=True)

    def offset(self, index: int, users: int) -> float:
        return index * self.seconds / users if users else 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "linear", "seconds": self.seconds}


@dataclass(frozen=True)
class Batches:
    """Users start ``size`` at a time, one batch every ``interval`` seconds."""

    size: int
    interval: float

    def __post_init__(self) -> None:
        _count("batches(size)", self.size, 1)
        _positive("batches(interval)", self.interval, allow_zero=True)

    def offset(self, index: int, users: int) -> float:
        return (index // self.size) * self.interval

    def describe(self) -> dict[str, Any]:
        return {"kind": "batches", "size": self.size, "interval": self.interval}


Ramp: TypeAlias = Immediate | LinearRamp | Batches


def linear(seconds: float) -> LinearRamp:
    return LinearRamp(seconds)


def batches(size: int, interval: float) -> Batches:
    return Batches(size, interval)


@dataclass(frozen=True)
class Closed:
    """A fixed population of users, each running iterations back to back."""

    users: int
    ramp: Ramp = Immediate()
    #: Iterations per user; None for "as many as fit in ``duration``".
    iterations: int | None = None
    #: Seconds after the run start at which no new iteration begins; None for no limit.
    duration: float | None = None

    model = Model.CLOSED

    def __post_init__(self) -> None:
        _count("closed(users)", self.users, 1)
        if not isinstance(self.ramp, Immediate | LinearRamp | Batches):
            raise WorkloadError(
                f"closed(ramp={self.ramp!r}): expected linear(seconds) or "
                "batches(size, interval), or None to start every user at once"
            )
        if self.iterations is None and self.duration is None:
            raise WorkloadError(
                "closed() needs iterations= or duration= (or both) so that the run ends by itself"
            )
        if self.iterations is not None:
            _count("closed(iterations)", self.iterations, 1)
        if self.duration is not None:
            _positive("closed(duration)", self.duration)

    def start_offset(self, index: int) -> float:
        """Seconds after the run start at which user ``index`` starts."""
        return self.ramp.offset(index, self.users)

    def start_offsets(self) -> list[float]:
        return [self.start_offset(i) for i in range(self.users)]

    @property
    def planned_duration(self) -> float | None:
        return self.duration

    @property
    def max_users(self) -> int:
        return self.users

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "users": self.users,
            "ramp": self.ramp.describe(),
            "iterations": self.iterations,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class ArrivalRate:
    """Iterations arrive at a rate (per second) that changes linearly within each stage.

    The k-th iteration (counting from 0) arrives when the integral of the rate
    from the run start reaches k, so a constant rate r starts iterations at
    0, 1/r, 2/r, ... and ``r * duration`` iterations fit in ``duration``.

    Nothing is computed ahead: :meth:`arrival_time`, :meth:`arrivals_by` and
    :attr:`planned_arrivals` are closed forms over the stages, so a rate of a million
    a second costs no more than one of ten. The plan's total is capped at
    :data:`MAX_ARRIVALS`.
    """

    #: (target rate per second at the end of the stage, stage seconds), in order.
    stages: tuple[tuple[float, float], ...]
    start_rate: float
    max_users: int

    model = Model.OPEN

    def __post_init__(self) -> None:
        if not self.stages:
            raise WorkloadError("ramping_rate() needs at least one (rate, duration) stage")
        _positive("start_rate", self.start_rate, allow_zero=True)
        for rate, duration in self.stages:
            _positive("stage rate", rate, allow_zero=True)
            _positive("stage duration", duration)
        _count("max_users", self.max_users, 1)
        total = self._table[-1][5]
        if not total <= MAX_ARRIVALS:  # an overflow to inf included
            peak = max([self.start_rate, *(rate for rate, _ in self.stages)])
            raise WorkloadError(
                f"an arrival rate of up to {peak:g}/s over {self.planned_duration:g} s plans "
                f"{total:.3g} iterations, more than the {MAX_ARRIVALS:.0e} an arrival-rate "
                "workload may plan: lower the rate (it is per second) or the duration"
            )

    @functools.cached_property
    def _table(self) -> tuple[tuple[float, float, float, float, float, float], ...]:
        """Per stage: its start, its seconds, the rate at its start, the slope term of its
        integral ``(r1 - r0) / 2D``, and the arrivals due before it and by its end."""
        table: list[tuple[float, float, float, float, float, float]] = []
        begin, previous, done = 0.0, self.start_rate, 0.0
        for rate, duration in self.stages:
            # Within the stage, arrivals so far are done + r0*t + (r1-r0)*t²/(2D).
            slope = (rate - previous) / (2 * duration)
            total = done + previous * duration + slope * duration * duration
            table.append((begin, duration, previous, slope, done, total))
            begin, previous, done = begin + duration, rate, total
        return tuple(table)

    @property
    def planned_duration(self) -> float:
        return sum(duration for _, duration in self.stages)

    @functools.cached_property
    def planned_arrivals(self) -> int:
        """How many iterations the schedule starts in all (``len(list(arrival_times()))``)."""
        return max(0, math.ceil(self._table[-1][5] - 1e-9))

    def rate_at(self, t: float) -> float:
        """The arrival rate (per second) at ``t`` seconds after the start."""
        begin, previous = 0.0, self.start_rate
        for rate, duration in self.stages:
            if t < begin + duration:
                return previous + (rate - previous) * (t - begin) / duration
            begin, previous = begin + duration, rate
        return 0.0

    def arrival_time(self, k: int) -> float:
        """The offset (seconds from the start) of iteration ``k``, for ``0 <= k <
        planned_arrivals``: where the integral of the rate reaches ``k``."""
        if not 0 <= k < self.planned_arrivals:
            raise IndexError(f"iteration {k} is not in the plan of {self.planned_arrivals}")
        for begin, duration, start, slope, done, total in self._table:
            if k >= total - 1e-9:
                continue
            need = max(0.0, k - done)
            if slope == 0:
                t = need / start
            else:
                root = math.sqrt(max(0.0, start * start + 4 * slope * need))
                t = (root - start) / (2 * slope)
            # Rounding may put the stage's last arrival at its end, not past it.
            return begin + min(max(0.0, t), duration)
        raise AssertionError(f"iteration {k} fell in no stage")  # pragma: no cover

    def arrivals_by(self, t: float) -> int:
        """How many iterations arrive at offsets up to ``t`` seconds (``t`` included)."""
        if t < 0:
            return 0
        for begin, duration, start, slope, done, _ in self._table:
            if t < begin + duration:
                elapsed = t - begin
                due = done + start * elapsed + slope * elapsed * elapsed
                return min(self.planned_arrivals, math.floor(due + 1e-9) + 1)
        return self.planned_arrivals

    def arrival_times(self) -> Iterator[float]:
        """Offsets (seconds from the start) of every iteration, in order."""
        for k in range(self.planned_arrivals):
            yield self.arrival_time(k)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "start_rate": self.start_rate,
            "stages": [list(stage) for stage in self.stages],
            "max_users": self.max_users,
        }


@dataclass(frozen=True)
class Stages:
    """The number of concurrent users follows a piecewise-linear target over time."""

    #: (target users at the end of the stage, stage seconds), in order.
    stages: tuple[tuple[int, float], ...]
    start_users: int = 0

    model = Model.STAGES

    def __post_init__(self) -> None:
        if not self.stages:
            raise WorkloadError("stages() needs at least one (target_users, duration) stage")
        for target, duration in self.stages:
            _count("stage target_users", target, 0)
            _positive("stage duration", duration)
        _count("start_users", self.start_users, 0)

    @property
    def planned_duration(self) -> float:
        return sum(duration for _, duration in self.stages)

    @property
    def max_users(self) -> int:
        return max([self.start_users, *(target for target, _ in self.stages)])

    def target_users(self, t: float) -> int:
        """How many users should be running ``t`` seconds after the start (0 once over)."""
        begin, previous = 0.0, float(self.start_users)
        for target, duration in self.stages:
            if t < begin + duration:
                exact = previous + (target - previous) * (t - begin) / duration
                return math.floor(exact + 1e-9)
            begin, previous = begin + duration, float(target)
        return 0

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "start_users": self.start_users,
            "stages": [list(stage) for stage in self.stages],
        }


Workload: TypeAlias = Closed | ArrivalRate | Stages


def closed(
    users: int,
    ramp: Ramp | None = None,
    iterations: int | None = None,
    duration: float | None = None,
) -> Closed:
    """``users`` users, each running ``iterations`` iterations and/or for ``duration`` s."""
    return Closed(users, ramp or Immediate(), iterations, duration)


def open_rate(rate_per_s: float, duration: float, max_users: int) -> ArrivalRate:
    """A constant arrival rate of ``rate_per_s`` iterations a second for ``duration`` s."""
    _positive("open_rate(rate_per_s)", rate_per_s)
    return ArrivalRate(((rate_per_s, duration),), rate_per_s, max_users)


def ramping_rate(
    stages: Sequence[tuple[float, float]], *, start_rate: float = 0.0, max_users: int = 100
) -> ArrivalRate:
    """An arrival rate ramping linearly from ``start_rate`` through each (rate, duration)."""
    return ArrivalRate(_pairs("ramping_rate", "rate", stages), start_rate, max_users)


def stages(targets: Sequence[tuple[int, float]], *, start_users: int = 0) -> Stages:
    """Concurrent users ramping linearly through each (target_users, duration) stage."""
    pairs = _pairs("stages", "target_users", targets)
    return Stages(tuple((_whole("stage target_users", u), d) for u, d in pairs), start_users)


def _pairs(function: str, first: str, items: object) -> tuple[tuple[Any, Any], ...]:
    """``items`` as a tuple of pairs, else a :class:`WorkloadError` naming what it takes."""
    expected = f"{function}() takes a list of ({first}, seconds) pairs"
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise WorkloadError(f"{expected}; got {items!r}")
    pairs = []
    for item in items:
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
            raise WorkloadError(f"{expected}; got {item!r} among them")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def partition(users: int, workers: int) -> list[range]:
    """Split user indexes 0..users-1 into ``workers`` contiguous ranges of near-equal size."""
    if workers < 1:
        raise WorkloadError(f"cannot split users across {workers!r} workers; need >= 1")
    base, extra = divmod(users, workers)
    ranges, start = [], 0
    for w in range(workers):
        size = base + (1 if w < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges
