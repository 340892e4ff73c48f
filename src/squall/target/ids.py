"""Typed identifiers: a user ID can never be passed where a thread ID is expected."""

from __future__ import annotations

import uuid
from typing import NewType

UserID = NewType("UserID", str)
ThreadID = NewType("ThreadID", str)
RunID = NewType("RunID", str)
MessageID = NewType("MessageID", str)
WebSocketID = NewType("WebSocketID", str)


def new_run_id() -> RunID:
    return RunID(str(uuid.uuid4()))


def new_message_id() -> MessageID:
    return MessageID(str(uuid.uuid4()))


def new_websocket_id() -> WebSocketID:
    return WebSocketID(uuid.uuid4().hex)


def text_problem(text: str) -> str | None:
    """What in ``text`` no stored or sent string can hold, or None: the NUL character
    (PostgreSQL's text refuses it) or a lone UTF-16 surrogate (no UTF-8 encodes it, yet
    JSON's ``\\uD800`` escapes spell one). Ids, keys and contents share the rule."""
    if "\x00" in text:
        return "the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate (\\uD800-\\uDFFF), which is no text"
    return None
