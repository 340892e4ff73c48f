"""Histories: what every client did, as a list of operation records.

A checker can only prove a property of what was recorded, so every client
records each operation twice: when it is *invoked* and when it *completes*
(``ok``, ``fail``, or ``info`` when the outcome is unknown, e.g. after a
timeout). An ``info`` operation may or may not have taken effect, and checkers
bound its effect both ways. Things a client merely observes (an event pushed
over a socket) are recorded as a lone ``ok`` with no invoke.

Everything here is pure: no I/O, no event loop. :class:`HistoryRecorder` takes
its clock as an argument and never awaits, so many tasks on one loop can share
one recorder without interleaving inside a record.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


def json_int(value: object) -> int | None:
    """``value`` if it is a JSON integer, else None: ``true`` is not one (Python's bool is
    an int)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: Characters of a received value shown in evidence (a malformed seq, say); the record in
#: the history is whole.
SHOWN_CHARS = 40


def shown_json(value: object) -> str:
    """A received value as JSON, ASCII-only and at most :data:`SHOWN_CHARS` characters."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 3]}..."


#: Characters a record keeps of an id or other string the target sent (a thread or run id,
#: a status, an error code): a longer one is cut (:func:`cut_text`). The reference
#: platform's ids are at most 64 characters, so only a target's oversized ids are cut.
MAX_ID_CHARS = 256


def cut_text(text: str, limit: int = MAX_ID_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else a printable prefix of it marked
    as cut, with the whole text's length and a digest of it (so two long ids that differ
    still differ once cut), ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    whole = text.encode("utf-8", "surrogatepass")
    mark = f"…[cut from {len(text)} chars #{hashlib.blake2b(whole, digest_size=6).hexdigest()}]"
    head = text[: max(0, limit - len(mark))]
    return "".join(c if c.isprintable() else "?" for c in head) + mark


def bounded_json(value: object, limit: int = MAX_ID_CHARS) -> JsonValue:
    """A received JSON value to record: a number, a boolean or null as it is, a string cut to
    ``limit`` characters (:func:`cut_text`), a list or object as it is when its JSON is that
    short, else its JSON cut (a string, so a seq that was no integer still is none)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return cut_text(value, limit)
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit and isinstance(value, list | dict):
        return value
    return cut_text(text, limit)


#: The record (a lone ``ok``) a socket makes when it stops recording the events it
#: receives, past its bound: value ``{"of": "event", "recorded": n, "limit": bound}``...
EVENTS_CUT = "events_cut"
#: ...and the one it makes at its close: how many it received and did not record
#: (``{"of": "event", "events": n}``). A checker of events judges only what was recorded,
#: so a history with these cannot be judged whole (:func:`squall.checks.verdict.cut_evidence`).
EVENTS_UNRECORDED = "events_unrecorded"


class HistoryError(ValueError):
    """A history, or a record in it, that cannot be interpreted as given."""


class OpType(enum.StrEnum):
    """Where an operation is in its life: invoked, or completed one of three ways."""

    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Op:
    """One record: ``process`` did ``f`` with ``value`` at monotonic ``time_ns``.

    ``index`` is the record's position in the whole history; ``value`` is a
    JSON object to be treated as read-only.
    """

    index: int
    type: OpType
    process: str
    f: str
    time_ns: int
    value: Mapping[str, JsonValue] = field(default_factory=dict)

    def describe(self) -> str:
        """Short human name used in evidence and error messages."""
        return f"#{self.index} {self.type} {self.f} by {self.process}"

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.value.get(key, default)

    def int_value(self, key: str) -> int:
        """``value[key]`` as an int, or :class:`HistoryError` naming the op and key."""
        found = self.value.get(key)
        if isinstance(found, bool) or not isinstance(found, int):
            raise HistoryError(
                f"{self.describe()} has {key}={found!r} in {dict(self.value)!r}, expected an "
                f"integer; record {key!r} as an int in the operation's value"
            )
        return found

    def str_value(self, key: str) -> str:
        """``value[key]`` as a str, or :class:`HistoryError` naming the op and key."""
        found = self.value.get(key)
        if not isinstance(found, str):
            raise HistoryError(
                f"{self.describe()} has {key}={found!r} in {dict(self.value)!r}, expected a "
                f"string; record {key!r} as a str in the operation's value"
            )
        return found

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "index": self.index,
            "type": self.type.value,
            "process": self.process,
            "f": self.f,
            "time_ns": self.time_ns,
            "value": dict(self.value),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Op:
        """Inverse of :meth:`to_dict`; rejects records with missing or mistyped fields."""
        index, kind, process = data.get("index"), data.get("type"), data.get("process")
        f, time_ns, value = data.get("f"), data.get("time_ns"), data.get("value", {})
        if (
            isinstance(index, int)
            and not isinstance(index, bool)
            and isinstance(kind, str)
            and kind in _OP_TYPES
            and isinstance(process, str)
            and isinstance(f, str)
            and isinstance(time_ns, int)
            and not isinstance(time_ns, bool)
            and isinstance(value, dict)
        ):
            return cls(index, OpType(kind), process, f, time_ns, value)
        raise HistoryError(
            f"bad operation record {dict(data)!r}: want index (int), type (one of "
            f"{sorted(_OP_TYPES)}), process (str), f (str), time_ns (int) and value (object)"
        )


_OP_TYPES = frozenset(t.value for t in OpType)


@dataclass(frozen=True, slots=True)
class OpPair:
    """An invoke and its completion; ``completion`` is None if none was recorded."""

    invoke: Op
    completion: Op | None

    @property
    def outcome(self) -> OpType:
        """``ok``/``fail``/``info``; an operation that never completed counts as ``info``."""
        return self.completion.type if self.completion is not None else OpType.INFO

    @property
    def process(self) -> str:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def start_ns(self) -> int:
        return self.invoke.time_ns

    @property
    def end_ns(self) -> int | None:
        return self.completion.time_ns if self.completion is not None else None

    @property
    def ops(self) -> tuple[Op, ...]:
        return (self.invoke,) if self.completion is None else (self.invoke, self.completion)

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        """The completion's value for ``key`` if it has one, else the invoke's."""
        if self.completion is not None and key in self.completion.value:
            return self.completion.value[key]
        return self.invoke.value.get(key, default)

    def int_value(self, key: str) -> int:
        if self.completion is not None and key in self.completion.value:
            return self.completion.int_value(key)
        return self.invoke.int_value(key)

    def str_value(self, key: str) -> str:
        if self.completion is not None and key in self.completion.value:
            return self.completion.str_value(key)
        return self.invoke.str_value(key)


def pair_ops(ops: Iterable[Op], *, fs: Collection[str] | None = None) -> list[OpPair]:
    """Pair each invoke with its process's next completion, in invoke order.

    A process runs one operation at a time, so its next completion is the
    invoke's. ``fs`` keeps only operations with those names (use it to skip
    lone observations). Raises :class:`HistoryError` on a completion with no
    outstanding invoke, or a second invoke while one is outstanding.
    """
    slots: list[list[Op | None]] = []
    pending: dict[str, tuple[int, Op]] = {}
    for op in sorted(ops, key=lambda o: o.index):
        if fs is not None and op.f not in fs:
            continue
        if op.type is OpType.INVOKE:
            if op.process in pending:
                raise HistoryError(
                    f"{op.describe()} while {pending[op.process][1].describe()} is outstanding; "
                    "a process runs one operation at a time: give concurrent tasks distinct "
                    "process ids"
                )
            pending[op.process] = (len(slots), op)
            slots.append([op, None])
            continue
        if op.process not in pending:
            raise HistoryError(
                f"{op.describe()} completes nothing: {op.process} has no outstanding invoke; "
                "pass fs=... to pair only invoked operations, leaving out lone observations"
            )
        slot, invoke = pending.pop(op.process)
        if invoke.f != op.f:
            raise HistoryError(f"{op.describe()} cannot complete {invoke.describe()}: f differs")
        slots[slot][1] = op
    return [OpPair(invoke, completion) for invoke, completion in slots if invoke is not None]


class HistoryRecorder:
    """Builds a history: assigns indices and timestamps, and forwards each record.

    ``clock`` returns monotonic nanoseconds; ``sink`` (e.g. ``HistoryLog.append``)
    receives every record as it is made. No method awaits, so records from
    concurrent tasks on one event loop never interleave. Memory grows with the
    history: a scenario bounds its operation count.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        sink: Callable[[Op], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sink = sink
        self._ops: list[Op] = []

    def __len__(self) -> int:
        return len(self._ops)

    def __repr__(self) -> str:
        return f"HistoryRecorder(ops={len(self._ops)})"

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(self._ops)

    def since(self, start: int) -> tuple[Op, ...]:
        """Records from position ``start`` on (take ``len(recorder)`` before a phase)."""
        return tuple(self._ops[start:])

    def _record(
        self, kind: OpType, process: str, f: str, value: Mapping[str, JsonValue] | None
    ) -> Op:
        op = Op(len(self._ops), kind, process, f, self._clock(), dict(value or {}))
        self._ops.append(op)
        if self._sink is not None:
            self._sink(op)
        return op

    def invoke(self, process: str, f: str, value: Mapping[str, JsonValue] | None = None) -> Op:
        return self._record(OpType.INVOKE, process, f, value)

    def complete(
        self, invoke: Op, kind: OpType, value: Mapping[str, JsonValue] | None = None
    ) -> Op:
        """Record ``invoke``'s completion; ``value`` is merged over the invoke's value."""
        if invoke.type is not OpType.INVOKE or kind is OpType.INVOKE:
            raise HistoryError(
                f"cannot complete {invoke.describe()} with {kind}: pass an invoke and one of "
                "ok/fail/info"
            )
        return self._record(kind, invoke.process, invoke.f, {**invoke.value, **(value or {})})

    def ok(self, invoke: Op, value: Mapping[str, JsonValue] | None = None) -> Op:
        return self.complete(invoke, OpType.OK, value)

    def fail(self, invoke: Op, value: Mapping[str, JsonValue] | None = None) -> Op:
        return self.complete(invoke, OpType.FAIL, value)

    def info(self, invoke: Op, value: Mapping[str, JsonValue] | None = None) -> Op:
        return self.complete(invoke, OpType.INFO, value)

    def observe(self, process: str, f: str, value: Mapping[str, JsonValue] | None = None) -> Op:
        """Record something ``process`` saw without asking (a pushed event): a lone ``ok``."""
        return self._record(OpType.OK, process, f, value)
