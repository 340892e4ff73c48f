"""How ``platform_races`` reads a target's ``GET /v1/accounts/me`` answer (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from squall.scenarios.platform_checks import AccountRow
from squall.scenarios.platform_races import account_row


def test_an_account_answer_becomes_its_row() -> None:
    body = {"user_id": "u", "balance": 7, "initial_credits": 10, "credits_granted": 2}
    assert account_row("u", body) == AccountRow("u", 7, 10, 2)
    assert account_row("u", {"balance": 3}) == AccountRow("u", 3, 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"balance": None, "initial_credits": 10},
        {"balance": "7", "initial_credits": 10},
        {"balance": True, "initial_credits": 10},
        {"balance": 7.5, "initial_credits": 10},
        {"balance": 7, "initial_credits": None},
        ["not", "an", "object"],
        None,
    ],
)
def test_an_answer_that_is_no_integer_leaves_the_account_out(body: Any) -> None:
    # int(None) raised and ended the judging: every measurement of the scenario was lost.
    assert account_row("u", body) is None
