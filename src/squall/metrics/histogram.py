"""Latency histograms in seconds, backed by HdrHistogram.

Percentiles from many workers are only exact if the workers ship their whole
distributions and the parent adds them up; averaging per-worker percentiles is
wrong. So every latency goes into an HdrHistogram (microsecond resolution,
3 significant digits, values from 1 µs to 1 hour) and crosses process
boundaries as HdrHistogram's standard compressed, base64 encoding, which any
HdrHistogram implementation can read.

From 2,048 µs up, neighbouring values share a slot of the counts (8,000 to 8,003 µs
one slot, for instance), and HdrHistogram reports a slot by its bounds: eight samples
of exactly 8 ms read as a maximum and a p99 of 8.003 ms. So the histogram also keeps
the exact smallest and largest values recorded (whole µs, as :func:`to_us` gives
them) and reports those as its minimum and maximum; percentiles are clamped into
[minimum, maximum], and the mean and standard deviation take each slot's middle
value clamped into the same range. None of them ever reads below the smallest or
above the largest recorded value, and identical samples read back exactly. The
standard encoding holds only the counts, so the extremes travel beside it:
:class:`PackedHistogram` between processes, a result's ``min`` and ``max`` fields
in the results (see :meth:`LatencyHistogram.decode`). An encoding read without them
(as results written before the extremes were kept) falls back to the bounds of its
lowest and highest slots, HdrHistogram's own reading.

The ``hdrh`` package stores the counts (a C array) and encodes and decodes
them in C, but computes bucket indexes, percentiles, means and resets in pure
Python, a few microseconds per value. Recording is on every load generator's
hot path, so this module computes the counts index itself (:func:`counts_index`,
checked against ``hdrh`` by the tests), adds whole tallies at once
(:meth:`LatencyHistogram.add_tally`) and reads statistics from the non-zero
counts only. The counts, the total and the encoding are those ``hdrh`` itself would
give, to the bit. So are the statistics whenever the exact extremes are bounds of
their slots (as any value below 2,048 µs is, having a slot of its own), except
percentiles: ``hdrh`` rounds the rank of a percentile to the nearest count, so its p95
of 11 values is the 10th, below which only 91 % of them lie.
:meth:`LatencyHistogram.percentile` takes the nearest rank, as the reference (Java)
HdrHistogram does: the smallest value that at least N % of the recorded values do not
exceed.
"""

from __future__ import annotations

import ctypes
import math
import sys
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate, compress
from typing import Any

from hdrh.histogram import HdrHistogram

#: Values are recorded in whole microseconds.
UNITS_PER_SECOND = 1_000_000
#: The smallest trackable value, in microseconds.
LOWEST_US = 1
#: The largest trackable value, in microseconds (1 hour); larger values are clamped to it.
HIGHEST_US = 3_600 * UNITS_PER_SECOND
#: Significant decimal digits kept for every value.
SIGNIFICANT_DIGITS = 3

#: The counts layout HdrHistogram uses for LOWEST_US = 1 and 3 significant digits:
#: 2,048 sub-buckets per bucket (each bucket after the first holds its upper half), so
#: values below 2,048 µs have a slot each and larger ones share a slot with their
#: neighbours that agree in the 11 leading bits.
SUB_BUCKET_BITS = 11
SUB_BUCKET_COUNT = 1 << SUB_BUCKET_BITS
_HALF_BITS = SUB_BUCKET_BITS - 1
_HALF_COUNT = 1 << _HALF_BITS


class HistogramDecodeError(ValueError):
    """An encoded histogram cannot be read; the message names the input and the expected form."""


def to_us(seconds: float) -> int:
    """``seconds`` as whole microseconds, clamped to [LOWEST_US, HIGHEST_US].

    Raises ValueError for a negative or NaN duration.
    """
    if seconds >= 0.0:  # False for NaN
        if seconds * UNITS_PER_SECOND >= HIGHEST_US:
            return HIGHEST_US
        us = round(seconds * UNITS_PER_SECOND)
        return us if us >= LOWEST_US else LOWEST_US
    raise ValueError(
        f"latency {seconds!r} s is not a non-negative number of seconds; "
        "record durations computed as end - start from a monotonic clock"
    )


def counts_index(us: int) -> int:
    """The slot of ``us`` (1 ≤ us ≤ HIGHEST_US) in the HdrHistogram counts array."""
    if us < SUB_BUCKET_COUNT:
        return us
    shift = us.bit_length() - SUB_BUCKET_BITS
    return ((shift + 1) << _HALF_BITS) + (us >> shift) - _HALF_COUNT


def value_from_index(index: int) -> int:
    """The lowest value (µs) that lands in slot ``index``: the inverse of :func:`counts_index`."""
    if index < SUB_BUCKET_COUNT:
        return index
    bucket = (index >> _HALF_BITS) - 1
    return ((index & (_HALF_COUNT - 1)) + _HALF_COUNT) << bucket


def _range_size(value: int) -> int:
    """How many µs values share the slot of ``value`` (HdrHistogram's equivalent range)."""
    bucket = max(0, (value | (SUB_BUCKET_COUNT - 1)).bit_length() - SUB_BUCKET_BITS)
    if value >> bucket >= SUB_BUCKET_COUNT:
        bucket += 1
    return 1 << bucket


def _highest_equivalent(value: int) -> int:
    bucket = max(0, (value | (SUB_BUCKET_COUNT - 1)).bit_length() - SUB_BUCKET_BITS)
    return ((value >> bucket) << bucket) + _range_size(value) - 1


def _lowest_equivalent(value: int) -> int:
    bucket = max(0, (value | (SUB_BUCKET_COUNT - 1)).bit_length() - SUB_BUCKET_BITS)
    return (value >> bucket) << bucket


def _acyclic(hdr: HdrHistogram) -> HdrHistogram:
    """``hdr`` freed as soon as it is dropped: its encoder refers back to it, a cycle only
    the garbage collector frees, and that one rarely runs its oldest generation. A
    generator making a few of these 188 KB histograms a second grew by some 40 MB a
    minute until it did. The encoder keeps a weak reference instead (it is only used
    through ``hdr``)."""
    hdr.encoder.histogram = weakref.proxy(hdr)
    return hdr


class LatencyHistogram:
    """A mergeable distribution of durations in seconds.

    Values are stored to microsecond resolution with 3 significant digits, so a
    percentile read back is within 0.1 % of the recorded value (never more
    precise than 1 µs) and never outside [min, max]; min and max are the exact
    values recorded. Durations under 1 µs are stored as 1 µs and over one hour
    as one hour.

    The exact extremes live in the ``min_value`` and ``max_value`` of the ``hdrh``
    histogram, which its own recording keeps exact too; every way in here (record,
    tally, merge, decode, reset) keeps them exact, and none of ``hdrh``'s readers
    of them (which report slot bounds) is used.
    """

    __slots__ = ("_hdr",)

    def __init__(self) -> None:
        self._hdr = _acyclic(HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS))

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(count=0)"
        return (
            f"LatencyHistogram(count={self.count}, p50={self.percentile(50):.6f}s, "
            f"p99={self.percentile(99):.6f}s, max={self.max:.6f}s)"
        )

    def record(self, seconds: float, count: int = 1) -> None:
        """Add ``count`` observations of a duration of ``seconds``."""
        us = to_us(seconds)
        hdr = self._hdr
        hdr.counts[counts_index(us)] += count
        hdr.total_count += count
        if us < hdr.min_value:
            hdr.min_value = us
        if us > hdr.max_value:
            hdr.max_value = us

    def add_tally(self, tally: Mapping[int, int]) -> None:
        """Add observations given as ``{microseconds: count}`` (e.g. a ``collections.Counter``).

        Keys must be whole microseconds within [LOWEST_US, HIGHEST_US] (as
        :func:`to_us` returns them). The result is exactly that of recording
        each value ``count`` times, at a fraction of the cost per value.
        """
        if not tally:
            return
        low, high = min(tally), max(tally)
        if low < LOWEST_US or high > HIGHEST_US:
            raise ValueError(
                f"tally values {low}..{high} µs are outside {LOWEST_US}..{HIGHEST_US}; "
                "convert durations with squall.metrics.histogram.to_us"
            )
        if min(tally.values()) < 1:
            raise ValueError(
                f"tally counts must be positive, got {min(tally.values())}; "
                "leave values that were not observed out of the tally"
            )
        hdr = self._hdr
        counts = hdr.counts
        total = 0
        for us, n in tally.items():
            if us < SUB_BUCKET_COUNT:
                counts[us] += n
            else:
                shift = us.bit_length() - SUB_BUCKET_BITS
                counts[((shift + 1) << _HALF_BITS) + (us >> shift) - _HALF_COUNT] += n
            total += n
        hdr.total_count += total
        if low < hdr.min_value:
            hdr.min_value = low
        if high > hdr.max_value:
            hdr.max_value = high

    def merge(self, other: LatencyHistogram) -> None:
        """Add every observation of ``other`` to this histogram (exact, extremes too).

        ``hdrh`` leaves the bounds of the extremes' slots behind when adding, so the
        exact extremes of the sum are set afterwards. An empty ``other`` adds nothing.
        """
        theirs = other._hdr
        if not theirs.total_count:
            return
        hdr = self._hdr
        if hdr.total_count:
            low = min(hdr.min_value, theirs.min_value)
            high = max(hdr.max_value, theirs.max_value)
        else:
            low, high = theirs.min_value, theirs.max_value
        hdr.add(theirs)
        hdr.min_value = low
        hdr.max_value = high

    def copy(self) -> LatencyHistogram:
        clone = LatencyHistogram()
        clone.merge(self)
        return clone

    def reset(self) -> None:
        hdr = self._hdr
        ctypes.memset(hdr.counts, 0, ctypes.sizeof(hdr.counts))
        hdr.total_count = 0
        hdr.min_value = sys.maxsize
        hdr.max_value = 0
        hdr.start_time_stamp_msec = sys.maxsize
        hdr.end_time_stamp_msec = 0

    def _slots(self) -> tuple[list[int], list[int]]:
        """Indexes of the non-zero counts, in order, and their counts (read in C)."""
        counts = memoryview(self._hdr.counts).cast("B").cast("Q").tolist()
        indexes = list(compress(range(len(counts)), counts))
        return indexes, [counts[i] for i in indexes]

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def count_above(self, seconds: float) -> int:
        """How many recorded values lie above ``seconds`` (at the histogram's resolution:
        a value in the same slot as ``seconds`` but above it counts, as its slot's
        highest equivalent is what :meth:`percentile` reports, unless that lies above
        the largest recorded value, which is then what it reports)."""
        bound = to_us(seconds)
        high = self._hdr.max_value
        indexes, counts = self._slots()
        return sum(
            n
            for index, n in zip(indexes, counts, strict=True)
            if min(_highest_equivalent(value_from_index(index)), high) > bound
        )

    @property
    def extremes_us(self) -> tuple[int, int]:
        """The exact smallest and largest recorded values in whole µs; (0, 0) when empty."""
        hdr = self._hdr
        return (int(hdr.min_value), int(hdr.max_value)) if hdr.total_count else (0, 0)

    @property
    def min(self) -> float:
        """The smallest recorded value, exactly (in seconds, of whole µs); 0.0 when empty."""
        return self.extremes_us[0] / UNITS_PER_SECOND

    @property
    def max(self) -> float:
        """The largest recorded value, exactly (in seconds, of whole µs); 0.0 when empty."""
        return self.extremes_us[1] / UNITS_PER_SECOND

    def _median_equivalents(self) -> Iterable[tuple[int, int]]:
        """(count, middle of the slot's range) per non-zero slot, as hdrh's mean uses them,
        the middle clamped into [min, max] (only the lowest and highest slot can move)."""
        low, high = self._hdr.min_value, self._hdr.max_value
        indexes, counts = self._slots()
        for index, n in zip(indexes, counts, strict=True):
            value = _highest_equivalent(value_from_index(index))
            middle = _lowest_equivalent(value) + (_range_size(value) >> 1)
            yield n, low if middle < low else high if middle > high else middle

    def _mean_us(self) -> float:
        total = 0
        for n, middle in self._median_equivalents():
            total += n * middle
        return float(total) / int(self._hdr.total_count)

    @property
    def mean(self) -> float:
        return self._mean_us() / UNITS_PER_SECOND if self._hdr.total_count else 0.0

    @property
    def stdev(self) -> float:
        total_count = self._hdr.total_count
        if not total_count:
            return 0.0
        mean = self._mean_us()
        squares = 0.0
        for n, middle in self._median_equivalents():
            deviation = middle * 1.0 - mean
            squares += (deviation * deviation) * n
        return math.sqrt(squares / total_count) / UNITS_PER_SECOND

    def percentile(self, p: float) -> float:
        """The value at percentile ``p`` (0–100) in seconds; 0.0 for an empty histogram.

        The nearest rank: the ``ceil(p / 100 * count)``-th smallest value (the first for
        ``p`` = 0), at the histogram's resolution: the highest value of its slot (the
        lowest for ``p`` = 0), clamped into [min, max], so p(0) is the exact minimum,
        p(100) the exact maximum and no percentile lies outside them. ``p`` is taken as
        the decimal it is written as, so p(99.9) of 1,000 values is the 999th, not the
        1,000th.
        """
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile {p!r} is outside 0..100; pass e.g. 99 for p99")
        total_count = self._hdr.total_count
        if not total_count:
            return 0.0
        wanted = max(math.ceil(Fraction(repr(float(p))) * total_count / 100), 1)
        indexes, counts = self._slots()
        cumulative = list(accumulate(counts))
        position = bisect_left(cumulative, wanted)
        if position == len(indexes):
            return 0.0
        value = value_from_index(indexes[position])
        us = _highest_equivalent(value) if p else _lowest_equivalent(value)
        low, high = self._hdr.min_value, self._hdr.max_value
        return (low if us < low else high if us > high else us) / UNITS_PER_SECOND

    def encode(self) -> str:
        """HdrHistogram's compressed encoding, base64, as text: the counts only, without
        the exact extremes (see :meth:`pack` and :meth:`decode`)."""
        encoded: bytes = self._hdr.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, encoded: str, extremes_us: tuple[int, int] | None = None) -> LatencyHistogram:
        """Read a histogram written by :meth:`encode` (or any HdrHistogram encoder).

        ``extremes_us`` are the exact smallest and largest recorded values (whole µs,
        :attr:`extremes_us` of the histogram encoded); they must lie in the lowest and
        highest slot that hold counts. Without them (an encoding from elsewhere, or
        stored before the extremes were kept) the histogram takes the bounds of those
        slots, as HdrHistogram reads them. An empty histogram ignores them.
        """
        histogram = cls()
        hdr = histogram._hdr
        if encoded:
            try:
                # decode_and_add() would leave its decoded histogram to the collector.
                hdr.add(_acyclic(HdrHistogram.decode(encoded.encode("ascii"), hdr.b64_wrap)))
            except Exception as exc:  # hdrh raises bare Exceptions and zlib/base64 errors
                raise HistogramDecodeError(
                    f"cannot decode histogram {encoded[:40]!r}...: {exc}; expected the base64 "
                    "compressed HdrHistogram text produced by LatencyHistogram.encode()"
                ) from exc
        if not hdr.total_count:
            hdr.min_value = sys.maxsize
            hdr.max_value = 0
            return histogram
        # Decoding leaves hdrh's reading of the extremes behind: the lowest value of the
        # lowest slot with counts and the highest of the highest (found while decoding,
        # in C; the tests check it).
        lowest, highest = int(hdr.min_value), int(hdr.max_value)
        first, last = counts_index(lowest), counts_index(highest)
        if extremes_us is None:
            low, high = lowest, highest
        else:
            low, high = extremes_us
            if not (0 <= low <= high and counts_index(low) == first and counts_index(high) == last):
                raise HistogramDecodeError(
                    f"histogram extremes {low!r}..{high!r} µs do not fit its counts, whose "
                    f"lowest and highest slots hold {lowest}..{highest} µs; pass the "
                    "extremes_us of the histogram that was encoded, or None"
                )
        hdr.min_value = low
        hdr.max_value = high
        return histogram

    def pack(self) -> PackedHistogram:
        """This histogram as plain data for another process: :meth:`encode` and the exact
        extremes beside it."""
        low, high = self.extremes_us
        return PackedHistogram(self.encode(), low, high)

    @classmethod
    def of(cls, seconds: list[float] | tuple[float, ...]) -> LatencyHistogram:
        """A histogram holding exactly the given durations."""
        histogram = cls()
        for value in seconds:
            histogram.record(value)
        return histogram


@dataclass(frozen=True)
class PackedHistogram:
    """A histogram as plain, picklable data (:meth:`LatencyHistogram.pack`).

    ``encoded`` is HdrHistogram's standard encoding (:meth:`LatencyHistogram.encode`),
    which holds only the counts; ``min_us`` and ``max_us`` beside it are the exact
    smallest and largest recorded values (whole µs; 0 and 0 when empty), which it
    cannot hold.
    """

    encoded: str
    min_us: int
    max_us: int

    def unpack(self) -> LatencyHistogram:
        """The histogram packed, exact extremes included."""
        return LatencyHistogram.decode(self.encoded, (self.min_us, self.max_us))

    def to_dict(self) -> dict[str, Any]:
        return {"encoded": self.encoded, "min_us": self.min_us, "max_us": self.max_us}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackedHistogram:
        return cls(str(data["encoded"]), int(data["min_us"]), int(data["max_us"]))
