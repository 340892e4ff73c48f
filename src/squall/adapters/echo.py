"""An independent adapter: a plain JSON echo WebSocket service, without authentication.

A message is ``{"type": "chat", "thread_id", "content", "client_msg_id"}``; the
service sends the same frame back, and that echo completes the message. There
is no acknowledgement, no progress event, no sequence number and no notion of
users, so ordering, isolation and delivery checks are not applicable: the
suite says so instead of reporting them as passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from squall.adapters.base import Adapter, Capabilities, Tracker
from squall.adapters.tracker import (
    MAX_EXPIRED,
    MAX_FOREIGN,
    RunObservation,
    RunStatus,
    SeqGap,
    keep_newest,
)
from squall.engine.identity import Identity


class EchoTracker:
    """Pure: an echoed frame with a pending ``client_msg_id`` completes that message.

    A frame naming no message this socket sent is foreign; the late echo of a message
    given up on (expired) is not: it answers that message, too late."""

    def __init__(self) -> None:
        self._pending: dict[str, RunObservation] = {}
        #: Messages given up on whose echo has not come (yet), the newest
        #: :data:`~squall.adapters.tracker.MAX_EXPIRED` of them (a target that never
        #: answers would grow it for good).
        self._expired: dict[str, None] = {}
        self.gaps: list[SeqGap] = []
        #: Frames naming no message this socket sent, the newest :data:`MAX_FOREIGN` of
        #: them (a target answering with wrong ids would grow it for good)...
        self.foreign_events: list[Mapping[str, Any]] = []
        #: ...and how many older ones were dropped from its front, so that
        #: ``foreign_dropped + len(foreign_events)`` counts every one.
        self.foreign_dropped = 0

    def __repr__(self) -> str:
        foreign = self.foreign_dropped + len(self.foreign_events)
        return f"EchoTracker(pending={len(self._pending)}, foreign={foreign})"

    def sent(self, client_msg_id: str, thread_id: str, now: float) -> RunObservation:
        observation = RunObservation(client_msg_id=client_msg_id, thread_id=thread_id, sent_at=now)
        self._pending[client_msg_id] = observation
        return observation

    def feed(self, frame: Mapping[str, Any], now: float) -> RunObservation | None:
        client_msg_id = str(frame.get("client_msg_id"))
        observation = self._pending.pop(client_msg_id, None)
        if observation is None:
            if client_msg_id in self._expired:
                del self._expired[client_msg_id]
            else:
                self.foreign_dropped += keep_newest(self.foreign_events, frame, MAX_FOREIGN)
            return None
        observation.completed_at = now
        observation.status = RunStatus.COMPLETED
        return observation

    def expire(self, observation: RunObservation, now: float) -> None:
        if not observation.done:
            observation.status = RunStatus.TIMED_OUT
            self._pending.pop(observation.client_msg_id, None)
            self._expired[observation.client_msg_id] = None
            if len(self._expired) > MAX_EXPIRED:
                del self._expired[next(iter(self._expired))]


class EchoAdapter(Adapter):
    """A JSON echo service: only round trips and success can be measured."""

    name: ClassVar[str] = "echo"
    capabilities: ClassVar[Capabilities] = Capabilities(
        authentication=False,
        acknowledgements=False,
        progress_events=False,
        ordering=False,
        isolation=False,
    )

    def headers(self, identity: Identity) -> dict[str, str]:
        return {}

    def message(self, thread_id: str, content: str, client_msg_id: str) -> dict[str, Any]:
        return {
            "type": "chat",
            "thread_id": thread_id,
            "content": content,
            "client_msg_id": client_msg_id,
        }

    def tracker(self) -> Tracker:
        return EchoTracker()

    def recognises(self, frame: Mapping[str, Any]) -> bool:
        return frame.get("type") == "chat"  # its own messages, sent back

    def delivered(self, observation: RunObservation) -> bool:
        return observation.status is RunStatus.COMPLETED
