from __future__ import annotations

import pytest

from squall.target.context import (
    ContextMessage,
    build_context,
    estimate_tokens,
    render_preferences,
    search_query,
)

SYSTEM = "s" * 40  # 10 tokens


def msg(role: str, chars: int, fill: str = "x") -> ContextMessage:
    # "user: " is 6 characters; the content makes up the rest of ``chars``.
    return ContextMessage(role, fill * (chars - len(role) - 2))


def test_estimate_is_ceil_of_quarter_chars() -> None:
    assert [estimate_tokens("a" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_everything_fits_untrimmed() -> None:
    history = [msg("user", 40), msg("assistant", 40), msg("user", 40)]
    ctx = build_context(SYSTEM, {"tone": "brief"}, history, budget_tokens=100)
    prefs = render_preferences({"tone": "brief"})
    assert ctx.report() == {
        "chars": 40 + len(prefs) + 120,
        "tokens": 10 + estimate_tokens(prefs) + 30,
        "history_messages": 3,
        "trimmed": False,
        "budget_tokens": 100,
    }
    assert ctx.parts()[0] == SYSTEM
    assert ctx.parts()[1] == 'preferences: {"tone":"brief"}'


def test_oldest_history_goes_first() -> None:
    history = [msg("user", 40, "a"), msg("assistant", 40, "b"), msg("user", 40, "c")]
    ctx = build_context(SYSTEM, {}, history, budget_tokens=30)
    assert [m.content[0] for m in ctx.history] == ["b", "c"]
    assert ctx.trimmed
    assert ctx.tokens == 30


def test_preferences_dropped_before_current_message_is_cut() -> None:
    history = [msg("user", 40, "a"), msg("user", 40, "c")]
    ctx = build_context(SYSTEM, {"k": "v" * 30}, history, budget_tokens=21)
    assert ctx.preferences == ""
    assert [m.content[0] for m in ctx.history] == ["c"]
    assert ctx.tokens == 20
    assert ctx.trimmed


def test_oversized_current_message_keeps_its_end() -> None:
    current = ContextMessage("user", "start " + "y" * 400 + " end")
    ctx = build_context(SYSTEM, {}, [current], budget_tokens=30)
    assert ctx.tokens <= 30
    assert ctx.history[-1].content.endswith(" end")
    assert not ctx.history[-1].content.startswith("start")
    assert ctx.system == SYSTEM
    assert ctx.trimmed


def test_system_prompt_cut_only_as_last_resort() -> None:
    ctx = build_context("s" * 400, {}, [msg("user", 40)], budget_tokens=20)
    assert ctx.tokens <= 20
    assert ctx.system.startswith("s")
    assert ctx.trimmed


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget_tokens=0"):
        build_context(SYSTEM, {}, [], budget_tokens=0)


def test_search_query_takes_longest_distinct_words() -> None:
    assert search_query("What did we say about the Budget, the budget and timelines?") == (
        "timelines or budget or about or what"
    )
    assert search_query("a b c; DROP TABLE x --") == "table or drop"
    assert search_query("hi !!") == ""
    assert search_query("one two three four five six seven eight") == (
        "eight or seven or three or five or four"
    )
