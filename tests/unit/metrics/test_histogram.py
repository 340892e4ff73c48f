"""LatencyHistogram: seconds in, µs resolution, 3 significant digits, exact merges and extremes."""

from __future__ import annotations

import json
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
    PackedHistogram,
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
        assert (merged.count, merged.min, merged.max) == (2, 0.010, 0.020)
        # And an empty histogram (fresh or decoded) that receives values reads their extremes.
        start = LatencyHistogram.decode(empty_encoded)
        start.merge(empty)
        start.merge(LatencyHistogram.of([0.010, 0.020]))
        assert (start.count, start.min, start.max) == (2, 0.010, 0.020)
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
    assert histogram.max == 3600.0
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
        assert histogram.extremes_us == (LOWEST_US, HIGHEST_US)
        assert histogram.max == 3600.0 < reference.get_max_value() / 1e6


def test_statistics_are_hdrh_s_clamped_into_the_exact_extremes() -> None:
    # From 8.123 ms up, so that both extremes share their slots with larger neighbours.
    microseconds = [to_us(s + 0.008123) for s in values(12, 4000)]
    low, high = min(microseconds), max(microseconds)
    histogram = LatencyHistogram()
    histogram.add_tally(Counter(microseconds))
    reference = hdr_reference(microseconds)
    # hdrh reads the extremes' slots by their bounds; these values are not on them.
    assert reference.get_min_value() < low
    assert high < reference.get_max_value()
    assert histogram.extremes_us == (low, high)
    # 4,000 values: every rank below is a whole number, where hdrh's rounding and the
    # nearest rank agree.
    for p in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        expected = min(max(reference.get_value_at_percentile(p), low), high)
        assert histogram.percentile(p) == expected / 1e6, p
    assert low / 1e6 < histogram.mean < high / 1e6
    # Read without its extremes (as results stored before they were kept), every
    # statistic is hdrh's own.
    bare = LatencyHistogram.decode(histogram.encode())
    assert bare.min == reference.get_min_value() / 1e6
    assert bare.max == reference.get_max_value() / 1e6
    assert bare.mean == float(reference.get_mean_value()) / 1e6
    assert bare.stdev == float(reference.get_stddev()) / 1e6
    for p in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert bare.percentile(p) == reference.get_value_at_percentile(p) / 1e6, p


def test_samples_of_exactly_8_ms_read_8_ms() -> None:
    # 8,000..8,003 µs share a slot, which HdrHistogram reads as 8.003 ms.
    histogram = LatencyHistogram.of([0.008] * 8)
    assert hdr_reference([8000] * 8).get_max_value() == 8003
    assert (histogram.min, histogram.max, histogram.mean, histogram.stdev) == (
        0.008,
        0.008,
        0.008,
        0.0,
    )
    assert {histogram.percentile(p) for p in (0, 50, 99, 99.9, 100)} == {0.008}
    assert histogram.count_above(0.008) == 0
    assert histogram.count_above(0.007999) == 8


def test_the_mean_takes_the_slots_middles_clamped_into_the_extremes() -> None:
    # 8,003 µs shares a slot of 4 (middle 8,002), 12,000 µs one of 8 (middle 12,004):
    # clamped into [8,003, 12,000], both middles are the values themselves.
    microseconds = [8003, 8003, 8003, 12000]
    histogram = LatencyHistogram.of([us / 1e6 for us in microseconds])
    assert hdr_reference(microseconds).get_mean_value() == 9002.5
    assert histogram.mean == 9002.25 / 1e6
    assert histogram.stdev == pytest.approx(math.sqrt(3) * 3997 / 4 / 1e6)
    # A middle inside [min, max] stays: 8,000 µs (slot middle 8,002) becomes the minimum,
    # and 10,000 µs's slot of 8 reads 10,004.
    histogram.record(0.008)
    histogram.record(0.010)
    assert histogram.mean == (4 * 8002 + 10_004 + 12_000) / 6 / 1e6


def test_merging_keeps_the_exact_extremes() -> None:
    low = LatencyHistogram.of([0.008, 0.0123])
    high = LatencyHistogram.of([0.0081, 2.5])
    merged = low.copy()
    merged.merge(high)
    assert merged.extremes_us == (8000, 2_500_000)
    assert (merged.min, merged.max, merged.percentile(100)) == (0.008, 2.5, 2.5)
    assert merged.percentile(0) == 0.008
    # The same through the form that crosses processes, either way round.
    across = high.pack().unpack()
    across.merge(low.pack().unpack())
    assert across.extremes_us == (8000, 2_500_000)
    assert across.encode() == merged.encode()
    assert across.pack() == merged.pack()


def test_pack_round_trips_through_json() -> None:
    histogram = LatencyHistogram.of([0.008, 0.0081, 0.012301, 7.0])
    packed = histogram.pack()
    assert (packed.min_us, packed.max_us) == (8000, 7_000_000)
    assert packed.encoded == histogram.encode()
    again = PackedHistogram.from_dict(json.loads(json.dumps(packed.to_dict())))
    assert again == packed
    unpacked = again.unpack()
    assert (unpacked.min, unpacked.max, unpacked.percentile(99)) == (0.008, 7.0, 7.0)
    assert LatencyHistogram().pack() == PackedHistogram(LatencyHistogram().encode(), 0, 0)
    assert LatencyHistogram().pack().unpack().count == 0


def test_an_encoding_without_extremes_reads_its_slots_bounds() -> None:
    # What results stored before the extremes were kept hold: the standard encoding only.
    encoded = LatencyHistogram.of([0.008] * 8 + [0.0123]).encode()
    old = LatencyHistogram.decode(encoded)
    assert old.extremes_us == (8000, 12_303)
    assert (old.percentile(0), old.percentile(50), old.percentile(100)) == (
        0.008,
        0.008003,
        0.012303,
    )
    exact = LatencyHistogram.decode(encoded, (8000, 12_300))
    assert (exact.percentile(50), exact.percentile(100), exact.max) == (0.008003, 0.0123, 0.0123)


@pytest.mark.parametrize("extremes", [(7999, 12_300), (8000, 12_304), (8004, 12_300), (9, 3)])
def test_extremes_outside_the_extreme_slots_are_refused(extremes: tuple[int, int]) -> None:
    encoded = LatencyHistogram.of([0.008, 0.0123]).encode()
    with pytest.raises(HistogramDecodeError, match="do not fit its counts"):
        LatencyHistogram.decode(encoded, extremes)


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
    assert histogram.extremes_us == (0, 0)
    histogram.record(0.25)
    assert histogram.pack() == LatencyHistogram.of([0.25]).pack()
    assert (histogram.min, histogram.max) == (0.25, 0.25)


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
    # 200,000..200,127 µs share a slot, read as its highest value below the maximum.
    assert LatencyHistogram.of([0.2, 0.2]).count_above(0.2) == 0
    assert LatencyHistogram.of([0.2, 0.2001]).count_above(0.2) == 2
