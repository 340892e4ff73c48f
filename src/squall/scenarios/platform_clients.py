"""Sockets and HTTP reads of the ``platform_races`` scenario, each recording its history.

A :class:`RecordingSocket` owns one WebSocket of the reference protocol and one reader
task: every frame it receives becomes a record in the shared
:class:`~squall.checks.history.HistoryRecorder` (see ``platform_checks`` for the record
conventions). Recording never awaits, so many sockets on one loop share the recorder.
:class:`Runs` pairs each sent message with its run across sockets: a run's completion
may be seen first on another socket of the same user.

A target decides how many events it pushes and what ids they carry, so what a socket
keeps of them is bounded (docs/races.md, "Bounds"): every id or other string of the
target's a record holds is cut to :data:`~squall.checks.history.MAX_ID_CHARS` characters,
and a socket records at most :data:`MAX_SOCKET_EVENTS` events (all sockets together at most
:data:`MAX_EVENTS`). Past that it records one ``events_cut``, counts the events it does not
record, and records that count (``events_unrecorded``) when it closes: the ordering and
isolation checkers then report the cut as a violation (``history-cut``), never as a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from squall.adapters.tracker import AGENT_EVENTS
from squall.checks.history import (
    EVENTS_CUT,
    EVENTS_UNRECORDED,
    HistoryRecorder,
    JsonValue,
    Op,
    bounded_json,
    cut_text,
    json_int,
)
from squall.engine.client import WebSocket, connect
from squall.engine.errors import ConnectError, ConnectionClosed, MessageTimeout
from squall.engine.identity import Identity
from squall.metrics.histogram import LatencyHistogram
from squall.metrics.recorder import Recorder

#: How long one read waits before the reader checks whether it should stop.
POLL_S = 0.25
#: Events one socket records at most; the rest it counts (``events_unrecorded``). The
#: busiest socket of a whole run at scale 1 receives about 250 (docs/races.md, "Bounds").
MAX_SOCKET_EVENTS = 10_000
#: Events all the sockets of one scenario record at most, together.
MAX_EVENTS = 100_000
#: Completions of runs not (yet) acknowledged that :class:`Runs` remembers at most.
MAX_EARLY = 1_000


@dataclass
class Runs:
    """Every run the scenario started, shared by all sockets: send → ack → completion."""

    recorder: HistoryRecorder
    response_time: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: client_msg_id → the ``run`` invoke, until the ack names the run.
    by_message: dict[str, Op] = field(default_factory=dict)
    #: run id → the ``run`` invoke, until a socket sees its completion.
    by_run: dict[str, Op] = field(default_factory=dict)
    #: Completions seen before the ack arrived: run id → (status, charge).
    early: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Events the sockets recorded, all told (at most :data:`MAX_EVENTS`).
    events_recorded: int = 0

    def acked(self, client_msg_id: str, run: str) -> None:
        invoke = self.by_message.pop(client_msg_id, None)
        if invoke is None:
            return
        self.by_run[run] = invoke
        if run in self.early:
            self.finish(run, *self.early.pop(run))

    def rejected(self, client_msg_id: str, code: str) -> None:
        invoke = self.by_message.pop(client_msg_id, None)
        if invoke is not None:
            self.recorder.fail(invoke, {"code": code})
        self.changed.set()

    def finish(self, run: str, status: str, charge: int | None) -> None:
        """A socket saw ``agent_completed`` of ``run`` (the first one counts)."""
        first = run not in self.completed
        invoke = self.by_run.pop(run, None)
        if invoke is None:
            # Remembered until its ack comes, the first :data:`MAX_EARLY` of them: a target
            # completing runs nobody started cannot make this grow.
            if first and len(self.early) < MAX_EARLY:
                self.early[run] = (status, charge)
                self.completed.add(run)
            self.changed.set()
            return
        self.completed.add(run)
        value: dict[str, JsonValue] = {"run": run, "status": status, "charge": charge}
        done = (self.recorder.ok if status == "completed" else self.recorder.fail)(invoke, value)
        self.response_time.record(max(0.0, (done.time_ns - invoke.time_ns) / 1e9))
        self.changed.set()

    async def wait(self, runs: set[str], deadline: float) -> set[str]:
        """Wait until every run in ``runs`` completed or ``deadline`` (monotonic) passes.

        Returns the runs still incomplete.
        """
        while True:
            missing = runs - self.completed
            left = deadline - time.monotonic()
            if not missing or left <= 0:
                return missing
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, POLL_S))

    def expire(self) -> None:
        """Runs whose outcome never arrived: ``info`` (may or may not have run)."""
        for invoke in [*self.by_message.values(), *self.by_run.values()]:
            self.recorder.info(invoke, {"reason": "no agent_completed before the deadline"})
        self.by_message.clear()
        self.by_run.clear()


class RecordingSocket:
    """One socket of one user, recording everything it sends and receives."""

    _ids = itertools.count()

    def __init__(self, label: str, user: str, recorder: HistoryRecorder, runs: Runs) -> None:
        self.label = label
        self.user = user
        self._recorder = recorder
        self._runs = runs
        self._ws: WebSocket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_op: Op | None = None
        self._sends: dict[str, Op] = {}
        self._resumes: dict[str, Op] = {}
        self._closing = False
        self.hello: dict[str, Any] | None = None
        self.hello_seen = asyncio.Event()
        self.closed_by_server = asyncio.Event()
        self.close_code: int | None = None
        #: Highest seq received per thread, and run ids acknowledged to this socket.
        self.last_seq: dict[str, int] = {}
        self.acked: dict[str, str] = {}
        self.seen_types: dict[str, set[str]] = {}
        self.changed = asyncio.Event()
        #: Events recorded, and received past the bound and not recorded (of which
        #: ``_unrecorded_told`` are in the history's ``events_unrecorded`` records).
        self.events_recorded = 0
        self.events_unrecorded = 0
        self._unrecorded_told = 0

    def __repr__(self) -> str:
        return f"RecordingSocket({self.label!r}, user={self.user!r}, open={self.open})"

    @property
    def open(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(self, url: str, identity: Identity, timeout_s: float) -> bool:
        """Open the socket and wait for ``hello``; False (recorded as fail) otherwise."""
        self._connect_op = self._recorder.invoke(self.label, "connect", {"user": self.user})
        try:
            self._ws = await connect(
                url, Recorder(), time.monotonic, headers=identity.auth_headers(), timeout=timeout_s
            )
        except ConnectError as exc:
            self._recorder.fail(self._connect_op, {"error": str(exc)})
            return False
        self._reader = asyncio.create_task(self._read(), name=f"reader {self.label}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_hello_or_close(), timeout=timeout_s)
        if self.hello is None and self._connect_op is not None:
            self._recorder.fail(self._connect_op, {"error": "no hello", "code": self.close_code})
            self._connect_op = None
        return self.hello is not None

    async def _wait_hello_or_close(self) -> None:
        hello = asyncio.ensure_future(self.hello_seen.wait())
        closed = asyncio.ensure_future(self.closed_by_server.wait())
        try:
            await asyncio.wait({hello, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hello.cancel()
            closed.cancel()

    async def send(self, thread: str, content: str, client_msg_id: str, *, expect: str) -> None:
        """Send one ``user_message``; the ack or error completes its ``send`` record."""
        process = f"{self.label}/{client_msg_id}"
        value: dict[str, JsonValue] = {
            "user": self.user,
            "thread": thread,
            "socket": self.label,
            "client_msg_id": client_msg_id,
            "expect": expect,
        }
        send = self._recorder.invoke(process, "send", value)
        self._runs.by_message[client_msg_id] = self._recorder.invoke(f"{process}/run", "run", value)
        self._sends[client_msg_id] = send
        frame = {
            "type": "user_message",
            "thread_id": thread,
            "content": content,
            "client_msg_id": client_msg_id,
        }
        try:
            assert self._ws is not None
            await self._ws.send_json(frame)
        except ConnectionClosed as exc:
            self._sends.pop(client_msg_id, None)
            self._recorder.fail(send, {"code": "closed", "error": str(exc)})
            self._runs.rejected(client_msg_id, "closed")

    async def resume(self, thread: str, after_seq: int) -> None:
        """Send ``resume``; ``resume_done`` (or an error) completes its record."""
        self._resumes[thread] = self._recorder.invoke(
            self.label, "resume", {"thread": thread, "after_seq": after_seq}
        )
        assert self._ws is not None
        await self._ws.send_json({"type": "resume", "thread_id": thread, "after_seq": after_seq})

    async def wait_for(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``predicate()`` holds after some frame, or ``deadline`` passes."""
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or not self.open:
                return predicate()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, POLL_S))
        return True

    def pending_sends(self) -> int:
        return len(self._sends)

    def resuming(self) -> bool:
        """Whether a ``resume`` still waits for its ``resume_done``."""
        return bool(self._resumes)

    async def close(self) -> None:
        """Close from the client side (recorded as ``closed by=client``)."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
            self._recorder.observe(self.label, "closed", {"code": 1000, "by": "client"})
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.expire()

    def expire(self) -> None:
        """Sends never answered and resumes never done: outcome unknown. The events received
        past the bound and not recorded are recorded as a count."""
        if self.events_unrecorded > self._unrecorded_told:
            self._recorder.observe(
                self.label,
                EVENTS_UNRECORDED,
                {
                    "of": "event",
                    "user": self.user,
                    "events": self.events_unrecorded - self._unrecorded_told,
                },
            )
            self._unrecorded_told = self.events_unrecorded
        for send in self._sends.values():
            self._recorder.info(send, {"reason": "no ack or error"})
        self._sends.clear()
        for resume in self._resumes.values():
            self._recorder.info(resume, {"reason": "no resume_done"})
        self._resumes.clear()

    # -- the reader --

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            try:
                frame = await ws.recv_json(timeout=POLL_S)
            except MessageTimeout:
                continue
            except ConnectionClosed:
                break
            self._on_frame(frame)
            self.changed.set()
        self.close_code = ws.close_code
        if not self._closing:
            self._recorder.observe(self.label, "closed", {"code": ws.close_code, "by": "server"})
            self.closed_by_server.set()
        self.changed.set()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "hello":
            self.hello = frame
            if self._connect_op is not None:
                self._recorder.ok(
                    self._connect_op,
                    {
                        "worker": bounded_json(frame.get("worker")),
                        "session": bounded_json(frame.get("session")),
                    },
                )
                self._connect_op = None
            self.hello_seen.set()
        elif kind == "ack":
            cmid, run = str(frame.get("client_msg_id")), cut_text(str(frame.get("run_id")))
            send = self._sends.pop(cmid, None)
            if send is not None:
                self._recorder.ok(send, {"run": run})
                self.acked[cmid] = run
                self._runs.acked(cmid, run)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "resume_done":
            thread = str(frame.get("thread_id"))
            resume = self._resumes.pop(thread, None)
            if resume is not None:
                self._recorder.ok(resume, {"last_seq": bounded_json(frame.get("last_seq"))})
        elif kind in AGENT_EVENTS:
            self._on_event(frame, str(kind))

    def _on_error(self, frame: dict[str, Any]) -> None:
        code = cut_text(str(frame.get("code")))
        cmid = frame.get("client_msg_id")
        send = self._sends.pop(cmid, None) if isinstance(cmid, str) else None
        if send is not None and isinstance(cmid, str):
            self._recorder.fail(send, {"code": code})
            self._runs.rejected(cmid, code)
            return
        thread = frame.get("thread_id")
        resume = self._resumes.pop(thread, None) if isinstance(thread, str) else None
        if resume is not None:
            self._recorder.fail(resume, {"code": code})

    def _on_event(self, frame: dict[str, Any], kind: str) -> None:
        # Ids cut to a bounded length: a target chooses them (module docstring).
        thread = cut_text(str(frame.get("thread_id")))
        run = cut_text(str(frame.get("run_id")))
        seq = json_int(frame.get("seq"))
        value: dict[str, JsonValue] = {"thread": thread, "run": run}
        if "seq" in frame:
            # As received (cut if long): the ordering verdict reports a seq that is not an
            # integer.
            value["seq"] = bounded_json(frame["seq"])
        value.update({"type": kind, "user": self.user})
        if kind == "agent_completed":
            value["status"] = cut_text(str(frame.get("status")))
            value["charge"] = json_int(frame.get("charge"))
        recorded = self._record_event(value)
        # Past the bound only the threads and runs already known are followed, so these
        # stay bounded too; a completion still completes its run.
        if seq is not None and (recorded or thread in self.last_seq):
            self.last_seq[thread] = max(seq, self.last_seq.get(thread, 0))
        if recorded or run in self.seen_types:
            self.seen_types.setdefault(run, set()).add(kind)
        if kind == "agent_completed":
            charge = value["charge"]
            self._runs.finish(
                run, str(value["status"]), charge if isinstance(charge, int) else None
            )

    def _record_event(self, value: dict[str, JsonValue]) -> bool:
        """Record one received event, unless this socket (or all of them) recorded as many
        as they may: then count it, recording once that the history was cut."""
        if self.events_recorded < MAX_SOCKET_EVENTS and self._runs.events_recorded < MAX_EVENTS:
            self._recorder.observe(self.label, "event", value)
            self.events_recorded += 1
            self._runs.events_recorded += 1
            return True
        if self.events_unrecorded == 0:
            self._recorder.observe(
                self.label,
                EVENTS_CUT,
                {
                    "of": "event",
                    "user": self.user,
                    "recorded": self.events_recorded,
                    "limit": MAX_SOCKET_EVENTS,
                },
            )
        self.events_unrecorded += 1
        return False


async def http_get(
    client: httpx.AsyncClient,
    recorder: HistoryRecorder,
    f: str,
    path: str,
    value: dict[str, JsonValue],
) -> tuple[int, Any]:
    """GET ``path`` recorded as ``f`` by ``{user}/http``; returns (status, JSON body or None)."""
    invoke = recorder.invoke(f"{value['user']}/http", f, value)
    try:
        response = await client.get(path)
    except httpx.HTTPError as exc:
        recorder.info(invoke, {"error": str(exc)})
        return 0, None
    try:
        body = response.json()
    except ValueError:
        body = None
    result: dict[str, JsonValue] = {"status": response.status_code}
    if f == "account" and isinstance(body, dict):
        for key in ("balance", "initial_credits", "credits_granted"):
            if (number := json_int(body.get(key))) is not None:
                result[key] = number
    recorder.ok(invoke, result)
    return response.status_code, body
