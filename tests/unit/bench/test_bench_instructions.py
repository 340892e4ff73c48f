"""The instruction benchmark's arithmetic: callgrind totals and per-round-trip figures."""

from __future__ import annotations

import pytest
from bench.instructions import (
    CallgrindError,
    Count,
    _table,
    callgrind_totals,
    per_round_trip,
)
from bench.record import Result

CALLGRIND_OUT = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m bench.clients squall --round-trips 5
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw

fn=(1) main
0 10 2 1 0 0 0 0 0 0

totals: 4073042049 1200 800 5 178 12 3 4 1
"""


def test_totals_are_read_by_event_name() -> None:
    totals = callgrind_totals(CALLGRIND_OUT)
    assert totals["Ir"] == 4_073_042_049
    assert totals["D1mr"] == 178
    assert list(totals) == ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


def test_older_summary_line_is_read_too() -> None:
    assert callgrind_totals("events: Ir\nsummary: 123\n") == {"Ir": 123}


def test_a_file_without_totals_says_what_is_missing() -> None:
    with pytest.raises(CallgrindError, match="no 'events:' or 'totals:' line"):
        callgrind_totals("events: Ir\nfn=(1) main\n0 5\n")


def test_per_round_trip_cancels_what_both_runs_share() -> None:
    # Both runs pay 1,000,000 for start-up and teardown; each round trip costs 30,000.
    short = Count(500, {"Ir": 1_000_000 + 500 * 30_000, "D1mr": 500 * 200})
    long = Count(2_500, {"Ir": 1_000_000 + 2_500 * 30_000, "D1mr": 2_500 * 200})
    assert per_round_trip(short, long) == 30_000
    assert per_round_trip(short, long, "D1mr") == 200


def test_per_round_trip_is_none_without_extra_round_trips_or_the_event() -> None:
    run = Count(500, {"Ir": 10})
    assert per_round_trip(run, run) is None
    assert per_round_trip(Count(2_500, {"Ir": 50}), run) is None
    assert per_round_trip(run, Count(2_500, {"Ir": 50}), "D1mr") is None


def test_table_compares_each_client_with_the_bare_loop_of_its_socket_count() -> None:
    figures = {
        ("bare-tasks", 100): {"Ir": 15_000.0, "D1mr": 80.0},
        ("squall", 100): {"Ir": 37_500.0, "D1mr": 178.0},
        ("squall", 1000): {"Ir": 39_000.0, "D1mr": None},
    }
    result = Result("instructions", "t", True, "python -m bench --only instructions")
    _table(result, figures, (100, 1000))
    assert result.table["rows"] == [
        ["100", "bare picows loop", "15,000", "80", "1.00×"],
        ["100", "squall engine", "37,500", "178", "2.50×"],
        ["1000", "bare picows loop", "—", "—", "—"],
        ["1000", "squall engine", "39,000", "—", "—"],
    ]
