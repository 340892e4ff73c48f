"""The ledger benchmark's bookkeeping of alternating rounds, with hand-written rounds."""

from __future__ import annotations

from typing import Any

from bench.ledger import DatabasePath, _cpu_cell, _per_statement, round_ratios


async def _never(conn: Any, index: int, round_: int, end: float) -> int:
    raise AssertionError("no round is run here")


def _path(what: str, *rounds: dict[str, Any]) -> DatabasePath:
    path = DatabasePath(what, pool=None, loop=_never, database="db")
    path.rounds = list(rounds)
    return path


def _round(debits: int, seconds: float, client: float, server: float | None) -> dict[str, Any]:
    return {
        "debits": debits,
        "elapsed_s": seconds,
        "debits_per_s": debits / seconds,
        "client_cpu_s": client,
        "server_cpu_s": server,
        "lock_wait_share": 0.0,
    }


def test_each_round_is_compared_with_the_ceiling_of_the_same_round() -> None:
    ceiling = _path("ceiling", _round(400, 2.0, 0.1, 0.1), _round(200, 2.0, 0.1, 0.1))
    submit = _path("submit", _round(100, 2.0, 0.1, 0.1), _round(100, 2.0, 0.1, 0.1))
    assert round_ratios(submit, ceiling) == [0.25, 0.5]


def test_a_round_in_which_the_ceiling_did_nothing_is_left_out() -> None:
    ceiling = _path("ceiling", _round(0, 2.0, 0.0, 0.0), _round(300, 3.0, 0.1, 0.1))
    submit = _path("submit", _round(50, 2.0, 0.1, 0.1), _round(30, 3.0, 0.1, 0.1))
    assert round_ratios(submit, ceiling) == [0.1]


async def test_summary_adds_the_rounds_up_and_merges_the_checks() -> None:
    async def check() -> dict[str, Any]:
        return {"ledger_held": True}

    path = _path("submit", _round(300, 2.0, 0.003, 0.012), _round(100, 2.0, 0.001, 0.004))
    path.check = check
    path.waits = {"Lock": 1, "CPU": 3}
    summary = await path.summary()
    assert (summary["debits"], summary["elapsed_s"], summary["debits_per_s"]) == (400, 4.0, 100.0)
    assert round(summary["client_cpu_us_per_debit"], 6) == 10.0
    assert round(summary["server_cpu_us_per_debit"], 6) == 40.0
    assert round(summary["cores_busy"], 6) == 0.005
    assert summary["lock_wait_share"] == 0.25
    assert summary["ledger_held"] is True
    assert _cpu_cell(summary) == "10 + 40"


async def test_server_cpu_is_unknown_when_any_round_could_not_read_it() -> None:
    path = _path("ceiling", _round(100, 1.0, 0.002, 0.004), _round(100, 1.0, 0.002, None))
    summary = await path.summary()
    assert (summary["server_cpu_us_per_debit"], summary["cores_busy"]) == (None, None)
    assert _cpu_cell(summary) == "20 + ?"
    assert _cpu_cell({}) == "—"


def test_submits_per_statement_is_shown_when_measured() -> None:
    assert _per_statement({"submits_per_statement": 7.25}) == "7.2"
    assert _per_statement({"submits_per_statement": None}) == "?"
    assert _per_statement({}) == "?"
