"""Latency histograms in seconds, backed by HdrHistogram.

Percentiles from many workers are only exact if the workers ship their whole
distributions and the parent adds them up; averaging per-worker percentiles is
wrong. So every latency goes into an HdrHistogram (microsecond resolution,
3 significant digits, values from 1 µs to 1 hour) and crosses process
boundaries as HdrHistogram's standard compressed, base64 encoding, which any
HdrHistogram implementation can read.
"""

from __future__ import annotations

import math

from hdrh.histogram import HdrHistogram

#: Values are recorded in whole microseconds.
UNITS_PER_SECOND = 1_000_000
#: The smallest trackable value, in microseconds.
LOWEST_US = 1
#: The largest trackable value, in microseconds (1 hour); larger values are clamped to it.
HIGHEST_US = 3_600 * UNITS_PER_SECOND
#: Significant decimal digits kept for every value.
SIGNIFICANT_DIGITS = 3


class HistogramDecodeError(ValueError):
    """An encoded histogram cannot be read; the message names the input and the expected form."""


def _to_us(seconds: float) -> int:
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(
            f"latency {seconds!r} s is not a non-negative number of seconds; "
            "record durations computed as end - start from a monotonic clock"
        )
    return min(HIGHEST_US, max(LOWEST_US, round(seconds * UNITS_PER_SECOND)))


class LatencyHistogram:
    """A mergeable distribution of durations in seconds.

    Values are stored to microsecond resolution with 3 significant digits, so a
    percentile read back is within 0.1 % of the recorded value (never more
    precise than 1 µs). Durations under 1 µs are stored as 1 µs and over one
    hour as one hour.
    """

    __slots__ = ("_hdr",)

    def __init__(self) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(count=0)"
        return (
            f"LatencyHistogram(count={self.count}, p50={self.percentile(50):.6f}s, "
            f"p99={self.percentile(99):.6f}s, max={self.max:.6f}s)"
        )

    def record(self, seconds: float, count: int = 1) -> None:
        """Add ``count`` observations of a duration of ``seconds``."""
        self._hdr.record_value(_to_us(seconds), count)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every observation of ``other`` to this histogram (exact)."""
        self._hdr.add(other._hdr)

    def copy(self) -> LatencyHistogram:
        clone = LatencyHistogram()
        clone.merge(self)
        return clone

    def reset(self) -> None:
        self._hdr.reset()

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    @property
    def min(self) -> float:
        return self._hdr.get_min_value() / UNITS_PER_SECOND if self.count else 0.0

    @property
    def max(self) -> float:
        return self._hdr.get_max_value() / UNITS_PER_SECOND if self.count else 0.0

    @property
    def mean(self) -> float:
        return float(self._hdr.get_mean_value()) / UNITS_PER_SECOND if self.count else 0.0

    @property
    def stdev(self) -> float:
        return float(self._hdr.get_stddev()) / UNITS_PER_SECOND if self.count else 0.0

    def percentile(self, p: float) -> float:
        """The value at percentile ``p`` (0–100) in seconds; 0.0 for an empty histogram."""
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile {p!r} is outside 0..100; pass e.g. 99 for p99")
        if not self.count:
            return 0.0
        return int(self._hdr.get_value_at_percentile(p)) / UNITS_PER_SECOND

    def encode(self) -> str:
        """HdrHistogram's compressed encoding, base64, as text."""
        encoded: bytes = self._hdr.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        """Read a histogram written by :meth:`encode` (or any HdrHistogram encoder)."""
        histogram = cls()
        if not encoded:
            return histogram
        try:
            histogram._hdr.decode_and_add(encoded.encode("ascii"))
        except Exception as exc:  # hdrh raises bare Exceptions and zlib/base64 errors
            raise HistogramDecodeError(
                f"cannot decode histogram {encoded[:40]!r}...: {exc}; expected the base64 "
                "compressed HdrHistogram text produced by LatencyHistogram.encode()"
            ) from exc
        return histogram

    @classmethod
    def of(cls, seconds: list[float] | tuple[float, ...]) -> LatencyHistogram:
        """A histogram holding exactly the given durations."""
        histogram = cls()
        for value in seconds:
            histogram.record(value)
        return histogram
