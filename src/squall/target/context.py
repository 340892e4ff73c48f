"""Build the agent's context and trim it to a token budget (pure: no I/O).

Token estimate: ``ceil(chars / 4)`` per part, summed over the parts (the usual rule of
thumb for English text with BPE tokenizers; exact counts need the model's tokenizer,
which the simulated model does not have).

Parts, in prompt order: the system prompt (with current worker state), the user's
preferences (JSON, sorted keys), then the conversation history oldest first, ending with
the message being answered. When the total exceeds the budget, trimming drops, in order:
the oldest history messages, then the preferences, then truncates the answered message
(keeping its end) and finally the system prompt (keeping its start). ``trimmed`` tells
whether anything was dropped or cut.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
_WORD = re.compile(r"[A-Za-z0-9]{4,}")
MAX_QUERY_TERMS = 5


def estimate_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``; 0 for the empty string."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ContextMessage:
    role: str
    content: str

    def render(self) -> str:
        return f"{self.role}: {self.content}"


@dataclass(frozen=True)
class Context:
    """The prompt the model sees, and the numbers ``agent_started`` reports."""

    system: str
    preferences: str
    history: tuple[ContextMessage, ...]
    budget_tokens: int
    trimmed: bool

    def parts(self) -> list[str]:
        out = [self.system]
        if self.preferences:
            out.append(self.preferences)
        out.extend(m.render() for m in self.history)
        return out

    @property
    def chars(self) -> int:
        return sum(len(p) for p in self.parts())

    @property
    def tokens(self) -> int:
        return sum(estimate_tokens(p) for p in self.parts())

    def report(self) -> dict[str, Any]:
        """The ``context`` object of ``agent_started``."""
        return {
            "chars": self.chars,
            "tokens": self.tokens,
            "history_messages": len(self.history),
            "trimmed": self.trimmed,
            "budget_tokens": self.budget_tokens,
        }


def render_preferences(preferences: Mapping[str, Any]) -> str:
    if not preferences:
        return ""
    return "preferences: " + json.dumps(preferences, sort_keys=True, separators=(",", ":"))


def _keep_tail(text: str, tokens: int) -> str:
    return text[len(text) - tokens * CHARS_PER_TOKEN :] if tokens > 0 else ""


def build_context(
    system: str,
    preferences: Mapping[str, Any],
    history: Sequence[ContextMessage],
    budget_tokens: int,
) -> Context:
    """Assemble the parts and trim them to ``budget_tokens`` (see the module docstring)."""
    if budget_tokens <= 0:
        raise ValueError(f"budget_tokens={budget_tokens}: expected a positive token budget")
    prefs = render_preferences(preferences)
    current = history[-1] if history else None
    older = list(history[:-1])
    trimmed = False

    def total() -> int:
        parts = [system, prefs, *(m.render() for m in older)]
        if current is not None:
            parts.append(current.render())
        return sum(estimate_tokens(p) for p in parts)

    while older and total() > budget_tokens:
        older.pop(0)
        trimmed = True
    if prefs and total() > budget_tokens:
        prefs = ""
        trimmed = True
    if current is not None and total() > budget_tokens:
        trimmed = True
        prefix = f"{current.role}: "
        room = budget_tokens - estimate_tokens(system) - estimate_tokens(prefix) - 1
        current = ContextMessage(current.role, _keep_tail(current.content, room))
    if total() > budget_tokens:
        trimmed = True
        rest = total() - estimate_tokens(system)
        system = system[: max(0, budget_tokens - rest) * CHARS_PER_TOKEN]
    kept = (*older, current) if current is not None else tuple(older)
    return Context(system, prefs, tuple(kept), budget_tokens, trimmed)


def search_query(text: str) -> str:
    """The history_search query for a user message: its longest distinct words, OR-ed.

    Words are ASCII letters/digits of length >= 4 (shorter ones are mostly stop
    words; the alphabet keeps the query safe for ``websearch_to_tsquery``),
    lower-cased, longest first, at most five.
    """
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        seen.setdefault(word.lower(), None)
    words = sorted(seen, key=lambda w: (-len(w), w))[:MAX_QUERY_TERMS]
    return " or ".join(words)
