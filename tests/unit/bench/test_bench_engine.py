"""The engine benchmark's arithmetic: per-kind medians and per-round ratios, no sockets."""

from __future__ import annotations

import pytest
from bench.engine_efficiency import KINDS, _per_round_ratio, _table
from bench.record import Result
from bench.table import Window


def _w(per_core: float, user_s: float | None = None) -> Window:
    """A 1-second window on one full core doing ``per_core`` round trips."""
    return Window(0.0, 1.0, per_core, 1.0, user_s)


def test_ratio_pairs_rounds_before_taking_the_median() -> None:
    # Round 2 ran while the machine was slow for everyone: the per-round ratio is steady
    # at 0.5 even though the medians of the rates (60 / 100) would say 0.6.
    windows = {
        ("squall", 100): [_w(50.0), _w(20.0), _w(60.0)],
        ("bare-tasks", 100): [_w(100.0), _w(40.0), _w(120.0)],
    }
    assert _per_round_ratio(windows, "squall", "bare-tasks", 100) == 0.5


def test_ratio_leaves_out_rounds_where_either_side_failed() -> None:
    windows = {
        ("squall", 100): [_w(50.0), None, _w(90.0)],
        ("bare-tasks", 100): [_w(100.0), _w(40.0), None],
    }
    assert _per_round_ratio(windows, "squall", "bare-tasks", 100) == 0.5
    assert _per_round_ratio(windows, "squall", "locust", 100) is None


def test_table_has_a_row_per_client_and_goals_per_socket_count() -> None:
    rates = {
        "bare": 140.0,
        "bare-tasks": 100.0,
        "squall": 65.0,
        "squall-json": 60.0,
        "squall-loop": 70.0,
        "locust": 20.0,
    }
    windows = {(kind, 100): [_w(rates[kind])] for kind in KINDS}
    result = Result("engine", "t", True, "python -m bench --only engine --quick")
    _table(result, windows, (100,))
    assert [row[1] for row in result.table["rows"]] == [
        "bare picows callbacks (ceiling)",
        "bare picows loop",
        "squall engine",
        "squall engine, JSON request",
        "squall engine, 100 requests / iteration",
        "Locust + websocket-client",
    ]
    squall_row = result.table["rows"][2]
    assert squall_row[2] == "65"
    assert squall_row[3] == "—"  # the windows carry no user / system split
    assert squall_row[4:] == ["0.65×", "0.46×"]
    goals = {goal["goal"].split(" ≥ ")[0]: goal for goal in result.goals}
    assert goals["squall vs Locust, 100 sockets"]["actual"] == 3.25
    assert goals["squall vs Locust, 100 sockets"]["met"] is True
    assert goals["squall vs bare picows loop, 100 sockets"]["actual"] == 0.65
    assert goals["squall vs bare picows loop, 100 sockets"]["met"] is False


def test_goals_carry_each_round_ratio_beside_their_median() -> None:
    windows = {
        ("squall", 1000): [_w(60.0), _w(75.0), None],
        ("bare-tasks", 1000): [_w(100.0), _w(100.0), _w(100.0)],
        ("locust", 1000): [_w(20.0), _w(20.0), _w(20.0)],
    }
    result = Result("engine", "t", True, "python -m bench --only engine --quick")
    _table(result, windows, (1000,))
    goals = {goal["goal"].split(" ≥ ")[0]: goal for goal in result.goals}
    bare = goals["squall vs bare picows loop, 1000 sockets"]
    assert bare["rounds"] == [0.6, 0.75, None]
    assert bare["actual"] == pytest.approx(0.675)
    assert bare["rounds_shown"] == "60.0 %, 75.0 % (1 of 2 met)"
    assert goals["squall vs Locust, 1000 sockets"]["rounds"] == [3.0, 3.75, None]


def test_cpu_split_column_is_the_median_user_and_system_time_per_round_trip() -> None:
    # 100,000 round trips in 1 CPU-second: 10 µs each, of which user 0.4 s -> 4 µs.
    windows = {
        ("squall", 100): [_w(100_000.0, 0.4), _w(100_000.0, 0.5), _w(100_000.0, 0.3)],
        ("bare-tasks", 100): [_w(200_000.0, 0.5)],
    }
    result = Result("engine", "t", True, "python -m bench --only engine --quick")
    _table(result, windows, (100,))
    rows = {row[1]: row for row in result.table["rows"]}
    assert rows["squall engine"][3] == "4.0 + 6.0"
    assert rows["bare picows loop"][3] == "2.5 + 2.5"


def test_a_client_refuses_a_url_off_this_machine() -> None:
    from bench.clients import main

    with pytest.raises(SystemExit, match=r"--url: host 203\.0\.113\.1 is not a loopback address"):
        main(["bare", "--url", "ws://203.0.113.1:9/", "--sockets", "1", "--duration", "1"])
