"""Where scenarios put their measurements, and how per-process measurements are merged.

A :class:`Recorder` lives in one worker process and is only touched from that
process's event loop thread, synchronously, so it needs no locks. It exports its
content as a :class:`RecorderState` (plain data: packed histograms, which are
the encoded counts and the exact extremes, and integers) which crosses process
boundaries and is merged exactly by
:func:`merge_states`; :func:`to_metrics` turns a merged state into the
:mod:`squall.metrics.result` objects.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import mul
from typing import Any

from squall.metrics.histogram import (
    HIGHEST_US,
    LOWEST_US,
    UNITS_PER_SECOND,
    LatencyHistogram,
    PackedHistogram,
    to_us,
)
from squall.metrics.result import Counter, ErrorSummary, Gauge, Metric, Rate, Trend

#: Trends whose per-second percentiles go into the time series, in order of preference.
SERIES_TRENDS = ("response_time", "round_trip")
#: How many sample messages are kept per error kind: the first ones that differ.
ERROR_SAMPLES = 3
#: Counter names the engine and clients use.
MESSAGES_SENT = "messages_sent"
MESSAGES_RECEIVED = "messages_received"
ERRORS = "errors"
TIMEOUTS = "timeouts"
#: Distinct error kinds one recorder keeps: a target controls ``server.<code>``, and a
#: kind per message would grow the reports (and their printing) without bound. Kinds past
#: this many are counted together in ``errors.other_kinds``, each message led by its kind.
MAX_ERROR_KINDS = 100
OTHER_KINDS = "other_kinds"
#: Characters of an error kind kept; a longer one is cut, ending in "…".
MAX_ERROR_KIND_CHARS = 100
#: Metric names one recorder holds (squall's own and ``errors.<kind>`` not counted): each
#: trend is a histogram of about 200 KiB, and a name made per iteration grew a one-second
#: run to gigabytes and minutes of summing up.
MAX_METRIC_NAMES = 1_000
#: The metrics squall itself records, by kind: a behaviour may record them too, as that
#: kind only. Taken first as another kind, the engine's own write (often at the end of a
#: run) failed, losing what was measured or killing the users that hit it.
OWN_METRICS = {
    **dict.fromkeys(
        (
            MESSAGES_SENT,
            MESSAGES_RECEIVED,
            ERRORS,
            TIMEOUTS,
            "iterations",
            "dropped_iterations",
            "interrupted_iterations",
        ),
        "counter",
    ),
    **dict.fromkeys(("ws_connect", "iteration_time", "schedule_lag", *SERIES_TRENDS), "trend"),
    "success": "rate",
    "users": "gauge",
}
#: Durations a trend holds as plain floats before folding them into its
#: histogram (8 bytes each: at most 512 KiB per trend between folds).
PENDING_LIMIT = 65_536
#: Durations from this many seconds up are clamped to the histogram's highest value.
HIGHEST_S = HIGHEST_US / UNITS_PER_SECOND


@dataclass
class RecorderState:
    """A recorder's content as plain, picklable, JSON-serialisable data."""

    trends: dict[str, PackedHistogram] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    gauges: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    error_samples: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trends": {k: v.to_dict() for k, v in self.trends.items()},
            "counters": dict(self.counters),
            "rates": {k: list(v) for k, v in self.rates.items()},
            "gauges": {k: list(v) for k, v in self.gauges.items()},
            "error_samples": {k: list(v) for k, v in self.error_samples.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecorderState:
        return cls(
            trends={
                str(k): PackedHistogram.from_dict(v) for k, v in data.get("trends", {}).items()
            },
            counters={str(k): int(v) for k, v in data.get("counters", {}).items()},
            rates={str(k): (int(v[0]), int(v[1])) for k, v in data.get("rates", {}).items()},
            gauges={
                str(k): (float(v[0]), float(v[1]), float(v[2]))
                for k, v in data.get("gauges", {}).items()
            },
            error_samples={
                str(k): [str(s) for s in v] for k, v in data.get("error_samples", {}).items()
            },
        )


@dataclass(frozen=True)
class Interval:
    """What happened since the previous :meth:`Recorder.take_interval` call."""

    sent: int
    received: int
    errors: int
    #: Histogram of the interval's samples of the first of :data:`SERIES_TRENDS` this
    #: recorder ever recorded (None if that one has none in the interval).
    latency: PackedHistogram | None


class _Trend:
    """One trend: its histogram and the durations recorded since the last fold.

    Appending a float to an array costs a fraction of a histogram update in
    Python, so durations (seconds >= 0) are folded in batches: converted to
    microseconds and counted by value in C (``map`` and ``collections.Counter``),
    then added per distinct value; durations from the histogram's highest value up
    are clamped to it here. The histogram after a fold is exactly the one recording
    each value directly would give. ``interval``, when set, receives every fold too
    (the per-second series).
    """

    __slots__ = ("histogram", "interval", "pending")

    def __init__(self, interval: LatencyHistogram | None) -> None:
        self.histogram = LatencyHistogram()
        self.interval = interval
        self.pending = array("d")

    def fold(self) -> None:
        pending = self.pending
        if pending:
            try:
                # round(s * 1e6) per value, as to_us() does; 0 µs is stored as LOWEST_US.
                tally = Tally(map(round, map(mul, pending, repeat(UNITS_PER_SECOND))))
            except (OverflowError, ValueError):
                # An infinite duration (clamped) or a NaN (refused): one value at a time.
                tally = Tally(map(to_us, pending))
            below = tally.pop(0, 0)
            if below:
                tally[LOWEST_US] += below
            if max(tally) > HIGHEST_US:
                above = [us for us in tally if us > HIGHEST_US]
                tally[HIGHEST_US] += sum(tally.pop(us) for us in above)
            self.histogram.add_tally(tally)
            if self.interval is not None:
                self.interval.add_tally(tally)
            del pending[:]


class Recorder:
    """Records trends, counters, rates and gauges for one process.

    Not thread-safe by design: one event loop owns it and every call is
    synchronous, so there is no ``await`` between reading and updating a value.
    Trend durations are buffered (see :data:`PENDING_LIMIT`) and folded into
    their histograms whenever they are read and at every :meth:`take_interval`.

    The counters and rates every message touches have a cheaper way in than a
    method call: :meth:`counter_cell`, :meth:`rate_cell` and :meth:`trend_buffer`
    hand out the recorder's own storage, which the engine's client and runner
    bump in place (a list item increment or an array append per message).
    """

    def __init__(self) -> None:
        self._trends: dict[str, _Trend] = {}
        #: Each trend's :meth:`trend_buffer`, by name.
        self.buffers: dict[str, array[float]] = {}
        self._counters: dict[str, list[int]] = {}
        self._rates: dict[str, list[int]] = {}
        self._gauges: dict[str, list[float]] = {}
        self._error_samples: dict[str, list[str]] = {}
        self._interval_trends: dict[str, LatencyHistogram] = {
            name: LatencyHistogram() for name in SERIES_TRENDS
        }
        self._interval_base = (0, 0, 0)
        #: Which of :data:`SERIES_TRENDS` the series follows: the first ever recorded here.
        self._series_rank = len(SERIES_TRENDS)

    def __repr__(self) -> str:
        return (
            f"Recorder(trends={sorted(self._trends)}, sent={self.counter(MESSAGES_SENT)}, "
            f"received={self.counter(MESSAGES_RECEIVED)}, errors={self.counter(ERRORS)})"
        )

    def _claim(self, name: str, kind: str) -> None:
        """Raise ValueError when ``name`` is a metric of another kind already: merged into
        one result, the last kind written replaced the other without a word (a behaviour's
        ``count("response_time")`` took the place of the latencies); or one of
        :data:`OWN_METRICS` (``errors.<kind>`` too: counters) as another kind; or not a
        string."""
        if type(name) is not str:
            raise ValueError(f"metric name {name!r} is a {type(name).__name__}: name it with a str")
        own = OWN_METRICS.get(name, "counter" if name.startswith(f"{ERRORS}.") else None)
        if own is not None and own != kind:
            raise ValueError(
                f"metric {name!r} is squall's own {own}: a {kind} cannot take its name; "
                "name it otherwise"
            )
        if own is None:
            taken = len(self._trends) + len(self._counters) + len(self._rates) + len(self._gauges)
            if taken >= MAX_METRIC_NAMES:
                raise ValueError(
                    f"metric {name[:80]!r} would be this process's metric number "
                    f"{taken + 1}, past the limit of {MAX_METRIC_NAMES}: a name made per "
                    "iteration or per user grows memory and the reports without bound; "
                    "record into a fixed set of names"
                )
        for other, held in (
            ("trend", self._trends),
            ("counter", self._counters),
            ("rate", self._rates),
            ("gauge", self._gauges),
        ):
            if other != kind and name in held:
                raise ValueError(
                    f"metric {name!r} is a {other} already: a {kind} cannot take its name; "
                    "name it otherwise"
                )

    def _trend(self, name: str) -> _Trend:
        trend = self._trends.get(name)
        if trend is None:
            self._claim(name, "trend")
            trend = self._trends[name] = _Trend(self._interval_trends.get(name))
            self.buffers[name] = trend.pending
        return trend

    def trend(self, name: str, seconds: float) -> None:
        """Record one duration (seconds) into the trend ``name``."""
        trend = self._trends.get(name)
        if trend is None:
            trend = self._trend(name)
        pending = trend.pending
        if 0.0 <= seconds < HIGHEST_S:
            pending.append(seconds)
        else:
            pending.append(to_us(seconds) / UNITS_PER_SECOND)  # clamped; raises if invalid
        if len(pending) >= PENDING_LIMIT:
            trend.fold()

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` (a whole number >= 0: counters only grow) to the counter ``name``."""
        if n.__class__ is not int or n < 0:
            raise ValueError(f"count({name!r}, {n!r}): a counter grows by a whole number >= 0")
        cell = self._counters.get(name)
        if cell is None:
            cell = self.counter_cell(name)
        cell[0] += n

    def counter_cell(self, name: str) -> list[int]:
        """The counter ``name`` as a one-element list a hot path bumps itself (``cell[0] += 1``)."""
        cell = self._counters.get(name)
        if cell is None:
            self._claim(name, "counter")
            cell = self._counters[name] = [0]
        return cell

    def rate_cell(self, name: str) -> list[int]:
        """The rate ``name`` as ``[passes, failures]``, for a hot path to bump itself
        (one item per outcome: ``cell[0] += 1`` for a pass)."""
        entry = self._rates.get(name)
        if entry is None:
            self._claim(name, "rate")
            entry = self._rates[name] = [0, 0]
        return entry

    def trend_buffer(self, name: str) -> array[float]:
        """Durations of the trend ``name`` not yet folded, for a hot path to append to.

        Values appended must be seconds >= 0; values from the histogram's highest
        value up are clamped when folded. The buffer is folded whenever the trend
        is read and at every :meth:`take_interval` (the runner calls it every second),
        so it holds at most a second's worth of durations between folds.
        """
        return self._trend(name).pending

    def rate(self, name: str, ok: bool) -> None:
        """Record one pass (``ok``) or failure of the rate ``name``."""
        entry = self._rates.get(name)
        if entry is None:
            entry = self.rate_cell(name)
        entry[0 if ok else 1] += 1

    def gauge(self, name: str, value: float) -> None:
        """Set the gauge ``name`` (a finite number); its lowest and highest values are kept
        too (a NaN would have stayed their value for good)."""
        if not math.isfinite(value):
            raise ValueError(f"gauge({name!r}, {value!r}): a gauge takes a finite number")
        entry = self._gauges.get(name)
        if entry is None:
            self._claim(name, "gauge")
            self._gauges[name] = [value, value, value]
        else:
            entry[0] = value
            entry[1] = min(entry[1], value)
            entry[2] = max(entry[2], value)

    def error(self, kind: str, message: str) -> None:
        """Count one error of ``kind`` in ``errors`` and ``errors.<kind>``, keeping samples.

        At most :data:`MAX_ERROR_KINDS` kinds of :data:`MAX_ERROR_KIND_CHARS` characters
        each are kept; the errors of any more are counted in ``errors.other_kinds``.
        ValueError, counting nothing, when either is not a string.
        """
        if type(kind) is not str or type(message) is not str:
            raise ValueError(
                f"error({kind!r:.80}, {message!r:.80}): give the kind and the message as str"
            )
        if len(kind) > MAX_ERROR_KIND_CHARS:
            message = f"{kind}: {message}"
            kind = kind[: MAX_ERROR_KIND_CHARS - 1] + "…"
        if kind not in self._error_samples and len(self._error_samples) >= MAX_ERROR_KINDS:
            message = f"{kind}: {message}"
            kind = OTHER_KINDS
        self.count(ERRORS)
        self.count(f"{ERRORS}.{kind}")
        _keep_sample(self._error_samples.setdefault(kind, []), message[:500])

    def counter(self, name: str) -> int:
        cell = self._counters.get(name)
        return 0 if cell is None else cell[0]

    def histogram(self, name: str) -> LatencyHistogram | None:
        trend = self._trends.get(name)
        if trend is None:
            return None
        trend.fold()
        return trend.histogram

    def take_interval(self) -> Interval:
        """Counts and latencies since the previous call (for the per-second series)."""
        now = (self.counter(MESSAGES_SENT), self.counter(MESSAGES_RECEIVED), self.counter(ERRORS))
        base = self._interval_base
        self._interval_base = now
        for trend in self._trends.values():
            trend.fold()
        histograms = [self._interval_trends[name] for name in SERIES_TRENDS]
        # One trend for the whole run: a second with round trips but no response time
        # (after some were recorded) has no latency, rather than the other trend's.
        for rank, histogram in enumerate(histograms[: self._series_rank]):
            if histogram.count:
                self._series_rank = rank
                break
        latency = None
        if self._series_rank < len(histograms) and histograms[self._series_rank].count:
            latency = histograms[self._series_rank].pack()
        for histogram in histograms:
            histogram.reset()
        return Interval(
            sent=now[0] - base[0],
            received=now[1] - base[1],
            errors=now[2] - base[2],
            latency=latency,
        )

    def state(self) -> RecorderState:
        for trend in self._trends.values():
            trend.fold()
        return RecorderState(
            trends={name: t.histogram.pack() for name, t in self._trends.items()},
            counters={name: cell[0] for name, cell in self._counters.items()},
            rates={name: (v[0], v[0] + v[1]) for name, v in self._rates.items()},
            gauges={name: (v[0], v[1], v[2]) for name, v in self._gauges.items()},
            error_samples={kind: list(s) for kind, s in self._error_samples.items()},
        )


def _keep_sample(kept: list[str], sample: str) -> None:
    """Keep ``sample`` if fewer than :data:`ERROR_SAMPLES` are kept and none is the same."""
    if len(kept) < ERROR_SAMPLES and sample not in kept:
        kept.append(sample)


def merge_states(states: Iterable[RecorderState]) -> RecorderState:
    """Combine the states of several processes exactly.

    Histograms and counts add up. Gauges from different processes are levels
    measured at different moments, so the merged gauge takes the highest last
    value, the lowest minimum and the highest maximum; process-wide sums (such as
    concurrent users) are computed from the time series instead.
    """
    histograms: dict[str, LatencyHistogram] = {}
    merged = RecorderState()
    for state in states:
        for name, packed in state.trends.items():
            decoded = packed.unpack()
            if name in histograms:
                histograms[name].merge(decoded)
            else:
                histograms[name] = decoded
        for name, n in state.counters.items():
            merged.counters[name] = merged.counters.get(name, 0) + n
        for name, (passes, total) in state.rates.items():
            p, t = merged.rates.get(name, (0, 0))
            merged.rates[name] = (p + passes, t + total)
        for name, (value, low, high) in state.gauges.items():
            if name in merged.gauges:
                v, lo, hi = merged.gauges[name]
                merged.gauges[name] = (max(v, value), min(lo, low), max(hi, high))
            else:
                merged.gauges[name] = (value, low, high)
        for kind, samples in state.error_samples.items():
            kept = merged.error_samples.setdefault(kind, [])
            for sample in samples:
                _keep_sample(kept, sample)
    merged.trends = {name: h.pack() for name, h in histograms.items()}
    _drop_kind_clashes(merged)
    return merged


def _drop_kind_clashes(merged: RecorderState) -> None:
    """A name recorded as one kind in one process and another in another (each process
    refuses a clash of its own): one result cannot hold both, and the kind written last
    replaced the other without a word. Every kind of it is dropped, and the clash counted
    as a ``scenario`` error naming them, so no threshold is judged on half of it."""
    kinds: dict[str, dict[str, Any]] = {
        "trend": merged.trends,
        "counter": merged.counters,
        "rate": merged.rates,
        "gauge": merged.gauges,
    }
    names: dict[str, list[str]] = {}
    for kind, held in kinds.items():
        for name in held:
            names.setdefault(name, []).append(kind)
    for name, found in names.items():
        if len(found) < 2:
            continue
        for kind in found:
            del kinds[kind][name]
        merged.counters[ERRORS] = merged.counters.get(ERRORS, 0) + 1
        clash = f"{ERRORS}.scenario"
        merged.counters[clash] = merged.counters.get(clash, 0) + 1
        _keep_sample(
            merged.error_samples.setdefault("scenario", []),
            f"metric {name!r} was recorded as a {' and a '.join(found)} by different worker "
            "processes: a name holds one kind, so it is left out of the result; name each "
            "kind otherwise",
        )


def to_metrics(state: RecorderState, duration_s: float) -> dict[str, Metric]:
    """The result metrics of a (merged) state; counters' rates use ``duration_s``."""
    metrics: dict[str, Metric] = {}
    for name, packed in state.trends.items():
        metrics[name] = Trend.from_histogram(name, packed.unpack())
    for name, n in state.counters.items():
        metrics[name] = Counter(name, n, n / duration_s if duration_s > 0 else 0.0)
    for name, (passes, total) in state.rates.items():
        metrics[name] = Rate(name, passes, total)
    for name, (value, low, high) in state.gauges.items():
        metrics[name] = Gauge(name, value, low, high)
    return metrics


def error_summaries(state: RecorderState) -> tuple[ErrorSummary, ...]:
    """Errors by kind, most frequent first, with their sample messages."""
    prefix = f"{ERRORS}."
    kinds = {
        name[len(prefix) :]: n for name, n in state.counters.items() if name.startswith(prefix)
    }
    return tuple(
        ErrorSummary(kind, n, tuple(state.error_samples.get(kind, ())))
        for kind, n in sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    )
