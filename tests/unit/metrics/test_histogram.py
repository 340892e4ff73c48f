"""LatencyHistogram: seconds in, µs resolution, 3 significant digits, exact merges."""

from __future__ import annotations

import math
import random
from collections import Counter
from fractions import Fraction

import pytest
from hdrh.histogram import HdrHistogram

from squall.metrics.histogram import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_DIGITS,
    HistogramDecodeError,
    LatencyHistogram,
    counts_index,
    to_us,
    value_from_index,
)


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


def test_merging_an_empty_histogram_keeps_the_minimum() -> None:
    empty_encoded = LatencyHistogram().encode()
    for empty in (LatencyHistogram(), LatencyHistogram.decode(empty_encoded)):
        merged = LatencyHistogram.of([0.010, 0.020])
        merged.merge(empty)
        assert (merged.count, merged.min, merged.max) == (2, 0.010, 0.020015)
        # And an empty histogram (fresh or decoded) that receives values reads their minimum.
        start = LatencyHistogram.decode(empty_encoded)
        start.merge(empty)
        start.merge(LatencyHistogram.of([0.010, 0.020]))
        assert (start.count, start.min, start.max) == (2, 0.010, 0.020015)
        assert start.encode() == LatencyHistogram.of([0.010, 0.020]).encode()


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


def hdr_reference(microseconds: list[int]) -> HdrHistogram:
    """The same values recorded one by one through hdrh itself (the reference)."""
    reference = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    for us in microseconds:
        reference.record_value(us)
    return reference


def test_counts_index_matches_hdrh_layout() -> None:
    reference = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    rng = random.Random(7)
    edges = [2**k + d for k in range(11, 32) for d in (-1, 0, 1)]
    samples = [
        *range(1, 5000),
        *edges,
        HIGHEST_US,
        *(rng.randrange(1, HIGHEST_US) for _ in range(5000)),
    ]
    for us in samples:
        assert counts_index(us) == reference._counts_index_for(us), us
    for index in range(1, reference.counts_len):
        assert value_from_index(index) == reference.get_value_from_index(index), index


def test_add_tally_equals_recording_each_value() -> None:
    seconds = [*values(11, 3000), 0.0, 1e-9, 0.002047, 0.002048, 0.0020485, 7200.0]
    microseconds = [to_us(s) for s in seconds]
    tallied = LatencyHistogram()
    tallied.add_tally(Counter(microseconds[:1000]))
    tallied.add_tally(Counter(microseconds[1000:]))
    recorded = LatencyHistogram.of(seconds)
    reference = hdr_reference(microseconds)
    for histogram in (tallied, recorded):
        assert histogram.encode() == reference.encode().decode("ascii")
        assert histogram.count == reference.get_total_count() == len(seconds)
        assert histogram.min == reference.get_min_value() / 1e6
        assert histogram.max == reference.get_max_value() / 1e6


def test_statistics_are_exactly_hdrh_s() -> None:
    microseconds = [to_us(s) for s in values(12, 4000)]
    histogram = LatencyHistogram()
    histogram.add_tally(Counter(microseconds))
    reference = hdr_reference(microseconds)
    assert histogram.mean == float(reference.get_mean_value()) / 1e6
    assert histogram.stdev == float(reference.get_stddev()) / 1e6
    # 4,000 values: every rank below is a whole number, where hdrh's rounding and the
    # nearest rank agree.
    for p in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert histogram.percentile(p) == reference.get_value_at_percentile(p) / 1e6, p


def nearest_rank(microseconds: list[int], p: str) -> float:
    """The exact nearest-rank percentile (p written as a decimal), in seconds."""
    ordered = sorted(microseconds)
    rank = max(1, math.ceil(Fraction(p) * len(ordered) / 100))
    return ordered[rank - 1] / 1e6


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 11, 19, 20, 21, 99, 101, 1000, 1001])
def test_percentiles_are_the_nearest_rank(n: int) -> None:
    # Below 2,048 µs every microsecond has a slot of its own, so the histogram is exact.
    rng = random.Random(n)
    microseconds = [rng.randint(1, 2047) for _ in range(n)]
    histogram = LatencyHistogram.of([us / 1e6 for us in microseconds])
    for p in ("0.1", "1", "10", "25", "50", "66.6", "90", "94", "95", "97", "99", "99.9", "100"):
        assert histogram.percentile(float(p)) == nearest_rank(microseconds, p), (n, p)
    assert histogram.percentile(0) == min(microseconds) / 1e6
    assert histogram.percentile(100) == histogram.max == max(microseconds) / 1e6


def test_a_percentile_holds_for_at_least_its_share_of_the_values() -> None:
    # p(95) of 1..11 ms: 10 of 11 values (91 %) are at most 10 ms, so p(95) is 11 ms.
    histogram = LatencyHistogram.of([i / 1000 for i in range(1, 12)])
    assert histogram.percentile(95) == pytest.approx(0.011, rel=1e-3)
    assert histogram.percentile(90) == pytest.approx(0.010, rel=1e-3)
    same = LatencyHistogram.of([0.0015] * 7)
    assert {same.percentile(p) for p in (0, 1, 50, 99.9, 100)} == {0.0015}


def test_add_tally_rejects_values_outside_the_range_and_changes_nothing() -> None:
    histogram = LatencyHistogram.of([0.001])
    before = histogram.encode()
    with pytest.raises(ValueError, match="outside"):
        histogram.add_tally({0: 1, 5: 2})
    with pytest.raises(ValueError, match="outside"):
        histogram.add_tally({HIGHEST_US + 1: 1})
    with pytest.raises(ValueError, match="positive"):
        histogram.add_tally({5: 0})
    assert histogram.encode() == before
    histogram.add_tally({})
    assert histogram.count == 1


def test_reset_empties_and_the_histogram_records_again() -> None:
    histogram = LatencyHistogram.of(values(13, 200))
    histogram.reset()
    assert (histogram.count, histogram.min, histogram.max, histogram.percentile(50)) == (
        0,
        0.0,
        0.0,
        0.0,
    )
    assert histogram.encode() == LatencyHistogram().encode()
    histogram.record(0.25)
    assert histogram.encode() == LatencyHistogram.of([0.25]).encode()


def test_to_us_rounds_clamps_and_rejects() -> None:
    assert to_us(0.0000014) == 1
    assert to_us(0.0000016) == 2
    assert to_us(0.0) == LOWEST_US
    assert to_us(1e9) == HIGHEST_US
    assert to_us(math.inf) == HIGHEST_US
    for bad in (-1e-6, math.nan, -math.inf):
        with pytest.raises(ValueError, match="non-negative"):
            to_us(bad)


def test_count_above_counts_values_over_the_bound() -> None:
    h = LatencyHistogram.of([0.001, 0.002, 0.049, 0.051, 0.2, 0.2])
    assert h.count_above(0.050) == 3
    assert h.count_above(0.0) == 6
    assert h.count_above(1.0) == 0
    assert LatencyHistogram().count_above(0.050) == 0
