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
