"""Benchmark 2's table: medians over alternating rounds, ratios taken round by round."""

from __future__ import annotations

from typing import Any

from bench.platform_throughput import _table


def entry(
    frames: float, messages: float, p99_s: float, errors: int = 0, users: int = 100
) -> dict[str, Any]:
    return {
        "users": users,
        "frames_per_s": frames,
        "messages_per_s": messages,
        "p50_s": p99_s / 2,
        "p99_s": p99_s,
        "errors": errors,
    }


def test_each_path_shows_its_median_and_the_median_of_its_per_round_ratios() -> None:
    table = _table(
        {
            # A slow second round: every path is slower in it, and the ratio holds.
            "ceiling": [
                entry(100_000, 100_000, 0.002),
                entry(50_000, 50_000, 0.004),
                entry(98_000, 98_000, 0.002),
            ],
            "ping": [
                entry(40_000, 40_000, 0.006),
                entry(21_000, 21_000, 0.01),
                entry(44_000, 44_000, 0.005),
            ],
            "agent": [
                entry(1_800, 250, 0.8, users=200),
                entry(900, 120, 1.6, errors=2, users=200),
                entry(1_700, 240, 0.9, users=200),
            ],
        }
    )
    ceiling, ping, agent = table["rows"]
    assert ceiling == [
        "bare echo server (ceiling)",
        "100",
        "98,000",
        "98,000",
        "1.0 ms",
        "2.0 ms",
        "100 %",
        "0",
    ]
    # Per round 40 %, 42 %, 44.9 %: the median is 42 %, not 40,000 / 98,000 = 41 %.
    assert ping[2:4] == ["40,000", "40,000"]
    assert ping[6] == "42 %"
    assert agent[1] == "200"
    assert agent[2] == "240"
    assert agent[5] == "900.0 ms"
    assert agent[7] == "2"  # errors add up over the rounds


def test_a_round_that_failed_is_left_out_of_medians() -> None:
    failed: dict[str, Any] = {"users": 100, "errors": 0}
    table = _table(
        {
            "ceiling": [entry(100_000, 100_000, 0.002), failed],
            "ping": [entry(40_000, 40_000, 0.006), entry(42_000, 42_000, 0.006)],
            "agent": [],
        }
    )
    _, ping, agent = table["rows"]
    assert ping[6] == "40 %"  # the second round has no ceiling to compare with
    assert agent[1:3] == ["—", "—"]
