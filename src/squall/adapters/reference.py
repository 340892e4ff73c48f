"""Chat with the reference platform over one WebSocket and record the standard metrics.

:class:`ReferenceChat` sends ``user_message`` frames and follows each run with a
:class:`~squall.adapters.tracker.RunTracker` until ``agent_completed``, an
``error`` for that message, or the timeout. Per message it records:

- trends ``ack_time``, ``first_event_time``, ``response_time`` (from the send,
  or in the open model from the iteration's intended start);
- rate ``success``: the run completed with status ``completed``;
- rate ``delivery``: an acknowledged run's whole event sequence arrived
  (started, tool executing/completed, at least one chunk, completed) with
  consecutive sequence numbers;
- counters ``errors.server.<code>`` for rejected messages and ``seq_gaps``
  for sequence gaps or duplicates on this socket (the suite reports them as
  the ``violations`` gauge).
"""

from __future__ import annotations

import itertools
import uuid

from squall.adapters.tracker import RunObservation, RunStatus, RunTracker
from squall.engine.client import WebSocket
from squall.engine.errors import MessageTimeout
from squall.engine.session import Session

_EXPECTED_KINDS = frozenset(
    {"agent_started", "tool_executing", "tool_completed", "agent_thinking", "agent_completed"}
)


def fully_delivered(observation: RunObservation) -> bool:
    """Every kind of agent event arrived, with consecutive sequence numbers."""
    seqs = observation.seqs
    consecutive = all(b == a + 1 for a, b in itertools.pairwise(seqs))
    return set(observation.events) >= _EXPECTED_KINDS and consecutive


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


class ReferenceChat:
    """One socket's conversation with the reference platform."""

    def __init__(self, ws: WebSocket, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.tracker = RunTracker()
        self._gaps_recorded = 0

    async def chat(self, thread_id: str, content: str, *, timeout: float = 30.0) -> RunObservation:  # noqa: ASYNC109
        """Send one message and wait for its run to end; never raises on a slow run."""
        clock = self.session.clock
        recorder = self.session.recorder
        client_msg_id = uuid.uuid4().hex
        sent_at = clock()
        observation = self.tracker.sent(client_msg_id, thread_id, self.session.take_origin(sent_at))
        await self.ws.send_json(
            {
                "type": "user_message",
                "thread_id": thread_id,
                "content": content,
                "client_msg_id": client_msg_id,
            }
        )
        deadline = sent_at + timeout
        while not observation.done:
            remaining = deadline - clock()
            if remaining <= 0:
                self.tracker.expire(observation, clock())
                recorder.count("timeouts")
                break
            try:
                frame = await self.ws.recv_json(timeout=remaining)
            except MessageTimeout:
                continue
            self.tracker.feed(frame, clock())
        self._record(observation)
        return observation

    def _record(self, observation: RunObservation) -> None:
        recorder = self.session.recorder
        for name, value in (
            ("ack_time", observation.ack_time),
            ("first_event_time", observation.first_event_time),
            ("response_time", observation.response_time),
        ):
            if value is not None:
                recorder.trend(name, max(0.0, value))
        recorder.rate("success", observation.status is RunStatus.COMPLETED)
        if observation.ack_at is not None:
            recorder.rate("delivery", fully_delivered(observation))
        if observation.status is RunStatus.REJECTED:
            recorder.error(
                f"server.{observation.error_code}",
                f"{observation.thread_id}: message rejected with {observation.error_code}",
            )
        if observation.context_chars is not None:
            recorder.gauge("context_chars", float(observation.context_chars))
        new_gaps = self.tracker.gaps[self._gaps_recorded :]
        for gap in new_gaps:
            recorder.count("seq_gaps")
            recorder.error(
                "ordering",
                f"thread {gap.thread_id}: expected seq {gap.expected}, got {gap.got}",
            )
        self._gaps_recorded = len(self.tracker.gaps)
