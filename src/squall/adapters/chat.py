"""Chat with a target over one WebSocket through its adapter, and record the standard metrics.

:class:`Chat` sends a message frame built by the adapter and feeds every
server frame to the adapter's pure tracker until the message's run ends, the
server rejects it, or the timeout passes. The timeout runs from the send: a send held
back because the target takes no data waits within it, and one still held back when it
passes raises :class:`~squall.engine.errors.SendTimeout` (``errors.send_timeout``), the
message counting as failed. Per message it records:

- trends ``ack_time``, ``first_event_time``, ``response_time`` (from the send,
  or in the open model for an iteration's first message from the send less its
  schedule lag), each only when
  the protocol has that moment;
- rate ``success``: the run completed with status ``completed``; a message
  whose socket closed or got a non-JSON frame, and a socket that could not be
  opened (in :func:`open_chat`), count as failures;
- rate ``delivery`` (protocols with progress events): the run's whole event
  sequence arrived with consecutive sequence numbers;
- counter ``errors.protocol`` for a message that timed out unanswered while frames
  arrived that the adapter does not recognise (``Adapter.recognises``: a target speaking
  another protocol; the sample shows the first such frame), or, for a protocol without
  isolation, that its tracker matched to no message of this socket (a reply with another
  message's id);
- counters ``errors.server.<code>`` for rejected messages, for the errors the
  tracker matched to no waiting message (its optional ``unmatched_errors``; see
  :mod:`squall.adapters.tracker` for which those are), and for a socket the server
  refused: closed by the server while the chat sent or waited, with a close the adapter
  names a refusal (``Adapter.refusal``), it counts once, as the server's error, not as
  ``errors.closed`` (the error frame announcing it, read or not, is that one count),
  ``seq_gaps`` (protocols with
  ordering) for sequence gaps or duplicates on this socket, and ``isolation_leaks``
  (protocols with isolation) for events of a thread this user does not own. The suite
  reports the last two as the ``violations`` gauge.

A tracker that keeps only the newest of its findings (gaps, unmatched errors, events of runs
the socket did not start) counts every one in ``findings``: the chat records them as each
frame brings them, so the counts stay exact and every event is judged while still kept.

A thread is this user's when this chat sent to it or its id starts with
``<user id>-``, the scenarios' naming rule.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

from squall.adapters.base import ISOLATION_LEAKS, SEQ_GAPS, Adapter, Tracker
from squall.adapters.registry import DEFAULT_ADAPTER, load
from squall.adapters.tracker import (
    TOKEN_REFUSED_FIX,
    UNAUTHORIZED,
    RunObservation,
    RunStatus,
    ServerError,
    announced,
)
from squall.engine.client import WebSocket
from squall.engine.errors import ConnectionClosed, MessageTimeout
from squall.engine.session import Session

_T = TypeVar("_T")


class Chat:
    """One socket's conversation with a target, spoken through ``adapter``; its error
    messages call the adapter ``adapter_name`` (as the user gave it: a registered name or
    an import path), by default the class's ``name``."""

    def __init__(
        self, ws: WebSocket, session: Session, adapter: Adapter, adapter_name: str | None = None
    ) -> None:
        self.ws = ws
        self.session = session
        self.adapter = adapter
        self.adapter_name = adapter_name if adapter_name is not None else adapter.name
        self.tracker = adapter.tracker()
        self.threads: set[str] = set()
        #: How many of the tracker's gaps, unmatched errors and foreign events the chat has
        #: recorded, counting the ones a bounded tracker dropped from their fronts since.
        self._gaps_recorded = 0
        self._errors_recorded = 0
        self._foreign_seen = 0
        #: The tracker's ``findings`` when the chat last recorded them; None for a tracker
        #: that does not count them (its findings are recorded after each message).
        self._findings = _findings(self.tracker)
        #: Messages this chat has tried to send (sent, or failed while sending).
        self.attempted = 0

    def __repr__(self) -> str:
        return f"Chat(adapter={self.adapter_name!r}, threads={len(self.threads)})"

    async def chat(self, thread_id: str, content: str, *, timeout: float = 30.0) -> RunObservation:  # noqa: ASYNC109
        """Send one message and wait for its run to end; never raises on a slow run."""
        clock = self.session.clock
        client_msg_id = uuid.uuid4().hex
        sent_at = clock()
        self.threads.add(thread_id)
        observation = self.tracker.sent(client_msg_id, thread_id, self.session.take_origin(sent_at))
        # Counted once the tracker took it: one whose sent() raised is among those never
        # tried, which the chat's end counts as failed.
        self.attempted += 1
        deadline = sent_at + timeout
        frames = 0
        first: dict[str, Any] | None = None
        foreign = self._foreign_count()
        # While it sends and waits, the chat counts a close with which the server refuses
        # the socket itself (:meth:`_count_close`).
        previous, self.ws.count_close = self.ws.count_close, self._count_close
        try:
            # The send has the message's own budget: a send held back by a target that
            # takes no data (backpressure) uses up the time left to wait for the answer.
            await self.ws.send_json(
                self.adapter.message(thread_id, content, client_msg_id), timeout=timeout
            )
            while not observation.done:
                remaining = deadline - clock()
                if remaining <= 0:
                    self.session.recorder.count("timeouts")
                    self._expire(observation, timeout, frames, first, foreign)
                    break
                try:
                    frame = await self.ws.recv_json(timeout=remaining)
                except MessageTimeout:
                    # ``recv`` counted this timeout already; the loop clock and
                    # ``clock`` differ by a little, so waiting again would count
                    # one message's timeout many times over.
                    self._expire(observation, timeout, frames, first, foreign)
                    break
                if not self.adapter.recognises(frame):
                    frames += 1
                    if first is None:
                        first = frame
                self._feed(frame, clock())
        except Exception:
            # The socket closed, the target sent a frame that is not a JSON object, or
            # an adapter could not read a frame: the error is counted by kind (where it
            # happened, or by the runner as the iteration's), and the message counts as
            # failed, so a target that drops every chat fails the ``success`` threshold
            # instead of leaving it without samples.
            self._record(observation)
            raise
        finally:
            self.ws.count_close = previous
        self._record(observation)
        return observation

    def _count_close(self, closed: ConnectionClosed) -> bool:
        """Count a close the server began as its refusal of the socket, when the adapter
        names it one (``Adapter.refusal``), instead of ``errors.closed``: True once counted.

        The frames the socket had not read are fed to the tracker first, so the error frame
        announcing the refusal, unread when the close cut the send or the wait short, is
        counted with the other unmatched errors. A refusal whose error frame never came
        (only the close's reason names it) is counted here."""
        known = _total(self.tracker, "unmatched_dropped", _unmatched_errors(self.tracker))
        self._feed_unread()
        errors = _unmatched_errors(self.tracker)
        unread = _since(errors, _dropped(self.tracker, "unmatched_dropped"), known)
        code = self.adapter.refusal(closed.code, closed.reason, unread)
        if code is None:
            return False
        if not announced(errors, code):
            fix = f"; {TOKEN_REFUSED_FIX}" if code == UNAUTHORIZED else ""
            self.session.recorder.error(
                f"server.{code}", f"socket refused with {code}: {closed}{fix}"
            )
        return True

    def _expire(
        self,
        observation: RunObservation,
        timeout: float,
        frames: int,
        first: dict[str, Any] | None,
        foreign: int,
    ) -> None:
        """Give up on ``observation``. When nothing moved the message on, name a protocol
        mismatch if ``frames`` the adapter does not recognise arrived in the meantime
        (``first`` of them); else, for a protocol without isolation, the frames its tracker
        matched to no message of this socket since it had matched ``foreign`` (see
        :meth:`_foreign_count`): answers naming another message."""
        self.tracker.expire(observation, self.session.clock())
        if observation.ack_at is not None or observation.events:
            return
        name = self.adapter_name
        if first is not None:
            self.session.recorder.error(
                "protocol",
                f"no answer to a message within {timeout:g} s, though {frames} frame(s) arrived "
                f"that the {name!r} adapter does not recognise: does the target speak "
                f"its protocol (--adapter)? First frame: {_shown(first)}",
            )
            return
        # With isolation, frames of runs this socket did not start are the user's other
        # sockets' (or leaks, counted as such): not answers to this message.
        if self.adapter.capabilities.isolation:
            return
        stray = self._foreign_count() - foreign
        if stray > 0:
            # A bounded tracker may have dropped the first of them: show the oldest it kept.
            dropped = _dropped(self.tracker, "foreign_dropped")
            kept = _since(self.tracker.foreign_events, dropped, foreign)
            which = "First frame" if stray == len(kept) else "Oldest frame kept"
            self.session.recorder.error(
                "protocol",
                f"no answer to a message within {timeout:g} s, though {stray} frame(s) "
                f"arrived that the {name!r} adapter matched to no message this socket sent: "
                f"does the target answer with the message's own id? {which}: "
                f"{_shown(kept[0])}",
            )

    def _foreign_count(self) -> int:
        """How many frames the tracker has matched to no message of this socket: its
        ``foreign_events`` and those a bounded tracker dropped from their front
        (``foreign_dropped``, optional)."""
        return _total(self.tracker, "foreign_dropped", self.tracker.foreign_events)

    def owns(self, thread_id: str) -> bool:
        return thread_id in self.threads or thread_id.startswith(
            f"{self.session.identity.user_id}-"
        )

    def _record(self, observation: RunObservation) -> None:
        recorder = self.session.recorder
        caps = self.adapter.capabilities
        for name, value, timed in (
            ("ack_time", observation.ack_time, caps.acknowledgements),
            ("first_event_time", observation.first_event_time, caps.progress_events),
            ("response_time", observation.response_time, True),
        ):
            if value is not None:
                recorder.trend(name, max(0.0, value))
            elif timed:
                # Declared with no sample: a threshold on it then reads "no samples" (no
                # message got that far), not "not recorded by that scenario", which
                # pointed at the threshold's configuration rather than at the target.
                recorder.trend_buffer(name)
        recorder.rate("success", observation.status is RunStatus.COMPLETED)
        acknowledged = observation.ack_at is not None or not caps.acknowledgements
        if caps.progress_events and acknowledged:
            delivered = self.adapter.delivered(observation)
            if not isinstance(delivered, bool):
                # Truthy, "no" read as a delivery: an adapter's mistake is no pass.
                recorder.error(
                    "adapter",
                    f"{type(self.adapter).__name__}.delivered() returned {delivered!r:.60}, "
                    "not True or False: counted as not delivered",
                )
                delivered = False
            recorder.rate("delivery", delivered)
        if observation.status is RunStatus.REJECTED:
            recorder.error(
                f"server.{observation.error_code}",
                f"{observation.thread_id}: message rejected with {observation.error_code}",
            )
        if observation.context_chars is not None:
            recorder.gauge("context_chars", float(observation.context_chars))
        self._record_findings()

    def settle(self) -> None:
        """Feed the tracker what arrived after the last answer and no chat read (an error
        naming no message, an event of a thread), and record what it finds, so a leak or a
        gap that comes last is counted too. Frames still on their way are not waited for."""
        self._feed_unread()
        self._record_findings()

    def _feed_unread(self) -> None:
        """Feed the tracker the frames that arrived and no chat read, taking them."""
        clock = self.session.clock
        for frame in self.ws.take_unread_json():
            self._feed(frame, clock())

    def _feed(self, frame: Mapping[str, Any], now: float) -> None:
        """Feed the tracker one frame. When it counts its findings and the frame brought one,
        record it at once: a bounded tracker may drop it from its lists later, and an event
        must be judged (``owns``) while it is kept. O(1) for a frame that brings none."""
        self.tracker.feed(frame, now)
        if self._findings is not None and _findings(self.tracker) != self._findings:
            self._record_findings()

    def _record_findings(self) -> None:
        """Record what the tracker found on this socket since the last time: errors that
        answered no waiting message, sequence gaps, events of threads not this user's."""
        recorder = self.session.recorder
        caps = self.adapter.capabilities
        tracker = self.tracker
        self._findings = _findings(tracker)
        unmatched = _unmatched_errors(tracker)
        dropped = _dropped(tracker, "unmatched_dropped")
        for error in _since(unmatched, dropped, self._errors_recorded):
            recorder.error(f"server.{error.code}", error.describe())
        self._errors_recorded = dropped + len(unmatched)
        user = self.session.identity.user_id
        if caps.ordering:
            recorder.count(SEQ_GAPS, 0)  # the check ran, even when it found nothing
            dropped = _dropped(tracker, "gaps_dropped")
            # Only a tracker that does not count its findings drops one unrecorded: it is
            # counted all the same, without its sample.
            for _ in range(dropped - self._gaps_recorded):
                recorder.count(SEQ_GAPS)
                recorder.error("ordering", f"user {user}: a gap the tracker no longer keeps")
            for gap in _since(tracker.gaps, dropped, self._gaps_recorded):
                recorder.count(SEQ_GAPS)
                recorder.error("ordering", gap.describe())
            self._gaps_recorded = dropped + len(tracker.gaps)
        if caps.isolation:
            recorder.count(ISOLATION_LEAKS, 0)
            dropped = _dropped(tracker, "foreign_dropped")
            # Likewise an event dropped before it was judged: it may have been a leak, so it
            # counts as one (the isolation verdict cannot pass on what it never saw).
            for _ in range(dropped - self._foreign_seen):
                recorder.count(ISOLATION_LEAKS)
                recorder.error(
                    "isolation",
                    f"user {user} received an event the tracker dropped before it was judged",
                )
            for frame in _since(tracker.foreign_events, dropped, self._foreign_seen):
                thread = str(frame.get("thread_id"))
                if not self.owns(thread):
                    recorder.count(ISOLATION_LEAKS)
                    recorder.error("isolation", f"user {user} received an event of thread {thread}")
            self._foreign_seen = self._foreign_count()


@contextlib.asynccontextmanager
async def open_chat(
    session: Session,
    url: str | None = None,
    *,
    adapter: Adapter | str | None = None,
    planned: int = 1,
) -> AsyncIterator[Chat]:
    """Open a socket to ``url`` (default ``params["ws_url"]``) and chat through the adapter.

    The adapter is ``adapter`` (an instance or a registered name), else
    ``params["adapter"]``, else the built-in reference protocol; it decides the
    upgrade's authentication headers. ``planned`` is how many messages the caller
    means to send: if the socket never opens, or an error ends the chat early,
    the messages never tried count as failed in ``success`` too, so a target that
    drops some sockets cannot hide behind the ones it kept.
    """
    chosen = adapter if adapter is not None else session.params.get("adapter", DEFAULT_ADAPTER)
    speaker = load(chosen) if isinstance(chosen, str) else chosen
    target = url if url is not None else str(session.params["ws_url"])
    async with contextlib.AsyncExitStack() as stack:
        try:
            headers = speaker.headers(session.identity)
            ws = await stack.enter_async_context(session.ws(target, headers=headers, auth=False))
        except Exception:
            # Counted already (``errors.connect``, or the error's own kind: an adapter whose
            # headers() raised); a socket that never opened is a failed chat too, so a
            # target refusing every upgrade (a wrong secret) fails the ``success``
            # threshold instead of passing as not applicable.
            _fail_untried(session, planned)
            raise
        try:
            chat = Chat(ws, session, speaker, chosen if isinstance(chosen, str) else None)
        except Exception:  # an adapter whose tracker() raised: no message can be tried
            _fail_untried(session, planned)
            raise
        try:
            yield chat
        except Exception:
            # The failing message itself was counted by Chat.chat.
            _fail_untried(session, planned - chat.attempted)
            raise
        finally:
            chat.settle()


def _unmatched_errors(tracker: Tracker) -> list[ServerError]:
    """The errors a tracker matched to no waiting message: its optional
    ``unmatched_errors``, none for a tracker without it."""
    errors = getattr(tracker, "unmatched_errors", None)
    return errors if isinstance(errors, list) else []


def _dropped(tracker: Tracker, name: str) -> int:
    """How many items a tracker that bounds one of its lists dropped from its front: its
    optional attribute ``name`` (``foreign_dropped``, ``gaps_dropped``,
    ``unmatched_dropped``), 0 for a tracker that keeps them all."""
    dropped = getattr(tracker, name, 0)
    return dropped if isinstance(dropped, int) else 0


def _total(tracker: Tracker, name: str, kept: Sequence[object]) -> int:
    """How many items a tracker's list has held: those it keeps and those it dropped
    (its attribute ``name``) from its front."""
    return _dropped(tracker, name) + len(kept)


def _since(kept: list[_T], dropped: int, seen: int) -> list[_T]:
    """The items of a list a tracker bounds (``kept``, after ``dropped`` were dropped from its
    front) that came after the first ``seen`` of all it has held."""
    return kept[max(0, seen - dropped) :]


def _findings(tracker: Tracker) -> int | None:
    """A tracker's optional ``findings``: how many gaps, unmatched errors and foreign events it
    has found, all told; None for a tracker that does not count them."""
    findings = getattr(tracker, "findings", None)
    return findings if isinstance(findings, int) else None


def _shown(frame: Mapping[str, Any]) -> str:
    """``frame`` as JSON for an error sample, cut to 160 characters."""
    shown = json.dumps(frame, ensure_ascii=False, default=str)
    return shown if len(shown) <= 160 else shown[:159] + "…"


def _fail_untried(session: Session, messages: int) -> None:
    for _ in range(max(0, messages)):
        session.recorder.rate("success", False)
