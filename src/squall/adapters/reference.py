"""The built-in adapter: the reference platform's protocol (docs/protocol.md).

Authentication is a bearer JWT on the upgrade; a message is a ``user_message``
frame; the server answers with an ``ack`` naming the run, then the run's
thread events (``agent_started`` … ``agent_completed``) carrying per-thread
``seq`` numbers, or an ``error`` echoing the ``client_msg_id`` (without it, for a
frame the platform could not read). The pure
:class:`~squall.adapters.tracker.RunTracker` follows those frames; its module says
which message an error without ids rejects, if any, and which close refuses the socket.

:class:`ReferenceChat` is :class:`~squall.adapters.chat.Chat` speaking this
protocol; see that module for the metrics it records.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from squall.adapters.base import Adapter, Capabilities, Tracker
from squall.adapters.chat import Chat
from squall.adapters.tracker import (
    AGENT_EVENTS,
    RunObservation,
    RunTracker,
    ServerError,
    refusal,
)
from squall.engine.client import WebSocket
from squall.engine.identity import Identity
from squall.engine.session import Session

#: The frame types the reference platform sends (docs/protocol.md, "Server → client frames").
SERVER_FRAMES = frozenset({"hello", "ack", "resume_done", "pong", "error", *AGENT_EVENTS})


def fully_delivered(observation: RunObservation) -> bool:
    """Every kind of agent event arrived, each with a sequence number, consecutive."""
    seqs = observation.seqs
    consecutive = all(b == a + 1 for a, b in itertools.pairwise(seqs))
    numbered = len(seqs) == len(observation.events)
    return set(observation.events) >= set(AGENT_EVENTS) and numbered and consecutive


def phase_times(observation: RunObservation) -> tuple[float, float] | None:
    """(context processing, response generation) seconds, from the server's event times.

    Context processing runs from ``agent_started`` (context built) to
    ``tool_completed`` (history searched); generation from there to
    ``agent_completed``. Both use the server's clock only.
    """
    ts = observation.server_ts
    try:
        started, tool, completed = ts["agent_started"], ts["tool_completed"], ts["agent_completed"]
    except KeyError:
        return None
    return max(0.0, tool - started), max(0.0, completed - tool)


class ReferenceAdapter(Adapter):
    """The reference platform's protocol: every notion squall checks is present."""

    name: ClassVar[str] = "squall"
    capabilities: ClassVar[Capabilities] = Capabilities(
        authentication=True,
        acknowledgements=True,
        progress_events=True,
        ordering=True,
        isolation=True,
    )

    def headers(self, identity: Identity) -> dict[str, str]:
        return identity.auth_headers()

    def message(self, thread_id: str, content: str, client_msg_id: str) -> dict[str, Any]:
        return {
            "type": "user_message",
            "thread_id": thread_id,
            "content": content,
            "client_msg_id": client_msg_id,
        }

    def tracker(self) -> Tracker:
        return RunTracker()

    def delivered(self, observation: RunObservation) -> bool:
        return fully_delivered(observation)

    def recognises(self, frame: Mapping[str, Any]) -> bool:
        kind = frame.get("type")
        return isinstance(kind, str) and kind in SERVER_FRAMES

    def refusal(
        self, close_code: int | None, reason: str, unread: Sequence[ServerError]
    ) -> str | None:
        return refusal(close_code, reason, unread)


REFERENCE = ReferenceAdapter()


class ReferenceChat(Chat):
    """One socket's conversation with the reference platform."""

    tracker: RunTracker

    def __init__(self, ws: WebSocket, session: Session) -> None:
        super().__init__(ws, session, REFERENCE)
