"""LatencyHistogram: seconds in, µs resolution, 3 significant digits, exact merges."""

from __future__ import annotations

import random

import pytest

from squall.metrics.histogram import HistogramDecodeError, LatencyHistogram


def values(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(-6, 1.5) for _ in range(n)]


def test_merge_equals_histogram_of_the_union() -> None:
    a, b, c = values(1, 2000), values(2, 500), values(3, 50)
    merged = LatencyHistogram.of(a)
    merged.merge(LatencyHistogram.of(b))
    merged.merge(LatencyHistogram.decode(LatencyHistogram.of(c).encode()))
    union = LatencyHistogram.of(a + b + c)
    assert merged.count == union.count == 2550
    for p in (0, 1, 25, 50, 90, 99, 99.9, 100):
        assert merged.percentile(p) == union.percentile(p)
    assert merged.encode() == union.encode()
    assert (merged.min, merged.max, merged.mean) == (union.min, union.max, union.mean)


def test_three_significant_digits_at_microsecond_resolution() -> None:
    histogram = LatencyHistogram.of([0.123456, 1.5, 0.000002])
    assert histogram.percentile(0) == pytest.approx(0.000002)
    assert histogram.percentile(50) == pytest.approx(0.123456, rel=1e-3)
    assert histogram.percentile(100) == pytest.approx(1.5, rel=1e-3)


def test_percentile_of_known_distribution() -> None:
    histogram = LatencyHistogram.of([i / 1000 for i in range(1, 1001)])  # 1..1000 ms
    assert histogram.percentile(50) == pytest.approx(0.5, rel=1e-3)
    assert histogram.percentile(99) == pytest.approx(0.99, rel=1e-3)
    assert histogram.mean == pytest.approx(0.5005, rel=1e-3)


def test_empty_histogram_reads_as_zero() -> None:
    empty = LatencyHistogram()
    assert (empty.count, empty.min, empty.max, empty.percentile(99)) == (0, 0.0, 0.0, 0.0)
    assert LatencyHistogram.decode("").count == 0
    assert repr(empty) == "LatencyHistogram(count=0)"


def test_clamps_tiny_and_huge_values_and_rejects_negative() -> None:
    histogram = LatencyHistogram.of([0.0, 1e-9, 10_000.0])
    assert histogram.min == 0.000001
    assert histogram.max == pytest.approx(3600.0, rel=1e-3)
    with pytest.raises(ValueError, match="non-negative"):
        histogram.record(-0.5)


def test_garbage_encoding_is_reported() -> None:
    with pytest.raises(HistogramDecodeError, match="cannot decode histogram"):
        LatencyHistogram.decode("not-a-histogram")
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        LatencyHistogram().percentile(101)
