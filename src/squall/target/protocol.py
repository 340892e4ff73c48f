"""The wire protocol of ``/v1/ws``: client frames parsed into dataclasses, server frames built.

Pure: no sockets, no event loop. The WebSocket layer hands in the raw text and
gets back a typed frame or one of :mod:`squall.target.errors`' exceptions, whose
``code`` becomes the ``error`` frame's code. See ``docs/protocol.md``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from squall.target.errors import (
    BadFrame,
    ContentTooLarge,
    FrameTooLarge,
    InvalidField,
    TargetError,
    UnknownType,
)
from squall.target.ids import ThreadID, text_problem

#: The WebSocket endpoint's path; a plain HTTP request to it is answered 426.
WS_PATH: Final = "/v1/ws"
THREAD_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CLIENT_MSG_ID_CHARS: Final = 128
#: The largest integer PostgreSQL's ``bigint`` holds: sequence numbers, limits and amounts
#: above it are refused as invalid rather than failing in the database.
MAX_BIGINT: Final = 2**63 - 1
CLIENT_TYPES: Final = ("user_message", "resume", "ping")
#: How ``squall target serve``'s ready line begins: printed once every worker serves.
READY_LINE: Final = "squall target: listening on "
#: How ``squall target serve``'s line on a worker that died begins ("... 1234 was killed by
#: SIGKILL; starting a new one"), which ``squall run`` looks for in the platform's log.
WORKER_DIED_LINE: Final = "squall target: worker pid "
#: How that line goes on when the worker is replaced, or when the platform gives up.
WORKER_REPLACED, PLATFORM_GAVE_UP = "; starting a new one", "; stopping"


@dataclass(frozen=True)
class UserMessage:
    thread_id: ThreadID
    content: str
    client_msg_id: str


@dataclass(frozen=True)
class Resume:
    thread_id: ThreadID
    after_seq: int


@dataclass(frozen=True)
class Ping:
    #: Echoed back verbatim in the ``pong``; any JSON value, ``None`` when absent.
    id: Any = None


ClientFrame = UserMessage | Resume | Ping


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is too large")
    return value


#: A ``\uD800``-``\uDFFF`` escape: JSON can spell a lone UTF-16 surrogate, which no UTF-8
#: text (a frame sent back, PostgreSQL, Redis) can hold.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def _unstorable(value: Any) -> str | None:
    """Why a string or key of ``value`` cannot be stored or sent back, or None."""
    if isinstance(value, str):
        what = text_problem(value)
        return None if what is None else f"a string holds {what}, which cannot be stored"
    if isinstance(value, dict):
        items = (part for pair in value.items() for part in pair)
        return next((why for why in map(_unstorable, items) if why is not None), None)
    if isinstance(value, list):
        return next((why for why in map(_unstorable, value) if why is not None), None)
    return None


def loads_strict(raw: str | bytes) -> Any:
    """``json.loads``, refusing with ValueError what strict JSON parsers or PostgreSQL cannot
    take: bytes that are not UTF-8, ``NaN`` and ``Infinity``, numbers too large for a
    double, the NUL character (``\\u0000``) or a lone UTF-16 surrogate (``\\uD800``) in a
    string or key, and nesting deeper than the interpreter can follow."""
    if isinstance(raw, bytes):
        # json.loads would also take UTF-16 and UTF-32; the protocol is UTF-8.
        raw = raw.decode("utf-8")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        if "\\u0000" in raw or _SURROGATE_ESCAPE.search(raw):
            why = _unstorable(value)
            if why is not None:
                raise ValueError(why)
    except RecursionError:
        raise ValueError("arrays or objects nest too deeply") from None
    return value


def decode_object(raw: str | bytes, max_frame_bytes: int) -> dict[str, Any]:
    """Turn one WebSocket message into a JSON object, enforcing the frame size limit first."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8"))
    if size > max_frame_bytes:
        raise FrameTooLarge(
            f"frame of {size} bytes exceeds the limit of {max_frame_bytes} bytes "
            "(SQUALL_MAX_FRAME_BYTES); send smaller frames"
        )
    try:
        value = loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "binary frame" if isinstance(raw, bytes) else "frame"
        raise BadFrame(
            f"{kind} is not valid UTF-8 JSON ({exc}); send one JSON object per frame"
        ) from None
    if not isinstance(value, dict):
        raise BadFrame(
            f"frame is a JSON {type(value).__name__}, expected an object with a 'type' field"
        )
    return value


def parse_object(obj: dict[str, Any], max_content_chars: int) -> ClientFrame:
    """Validate a decoded client frame and return its typed form."""
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise BadFrame(
            "frame has no string 'type' field; expected one of " + ", ".join(CLIENT_TYPES)
        )
    if kind == "user_message":
        thread_id = _thread_id(obj)
        client_msg_id = _string(obj, "client_msg_id")
        if not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID_CHARS:
            raise InvalidField(
                f"client_msg_id has {len(client_msg_id)} characters; "
                f"expected 1 to {MAX_CLIENT_MSG_ID_CHARS}"
            )
        content = _string(obj, "content")
        if len(content) > max_content_chars:
            raise ContentTooLarge(
                f"content has {len(content)} characters, the limit is {max_content_chars} "
                "(SQUALL_MAX_CONTENT_CHARS); shorten the message"
            )
        return UserMessage(thread_id=thread_id, content=content, client_msg_id=client_msg_id)
    if kind == "resume":
        thread_id = _thread_id(obj)
        after_seq = obj.get("after_seq")
        if (
            isinstance(after_seq, bool)
            or not isinstance(after_seq, int)
            or not 0 <= after_seq <= MAX_BIGINT
        ):
            raise InvalidField(
                f"after_seq is {after_seq!r}; expected an integer from 0 to {MAX_BIGINT} "
                "(0 replays everything)"
            )
        return Resume(thread_id=thread_id, after_seq=after_seq)
    if kind == "ping":
        return Ping(id=obj.get("id"))
    raise UnknownType(f"unknown frame type {kind!r}; expected one of " + ", ".join(CLIENT_TYPES))


def parse_frame(raw: str | bytes, *, max_frame_bytes: int, max_content_chars: int) -> ClientFrame:
    """:func:`decode_object` then :func:`parse_object`."""
    return parse_object(decode_object(raw, max_frame_bytes), max_content_chars)


def error_context(obj: dict[str, Any] | None) -> dict[str, str]:
    """The ``client_msg_id`` / ``thread_id`` of a rejected frame, so the client can match it."""
    if obj is None:
        return {}
    context: dict[str, str] = {}
    for key in ("client_msg_id", "thread_id"):
        value = obj.get(key)
        if isinstance(value, str) and len(value) <= 256:
            context[key] = value
    return context


def validate_thread_id(value: object) -> ThreadID:
    """A thread ID as chosen by a client: 1–64 characters of ``[A-Za-z0-9_.:-]``."""
    if not isinstance(value, str) or THREAD_ID_PATTERN.fullmatch(value) is None:
        raise InvalidField(
            f"thread_id {value!r} is invalid; expected 1 to 64 characters of [A-Za-z0-9_.:-]"
        )
    return ThreadID(value)


def _thread_id(obj: dict[str, Any]) -> ThreadID:
    if "thread_id" not in obj:
        raise InvalidField("thread_id is missing; expected 1 to 64 characters of [A-Za-z0-9_.:-]")
    return validate_thread_id(obj["thread_id"])


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        what = "missing" if key not in obj else f"a {type(value).__name__}"
        raise InvalidField(f"{key} is {what}; expected a string")
    return value


# --- server frames -----------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    """One server frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def hello_frame(worker: int, socket_id: str, user_id: str, session: int | None) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "hello",
        "worker": worker,
        "socket_id": socket_id,
        "user_id": user_id,
    }
    if session is not None:
        frame["session"] = session
    return frame


def ack_frame(client_msg_id: str, message_id: str, run_id: str, thread_id: str) -> dict[str, Any]:
    return {
        "type": "ack",
        "client_msg_id": client_msg_id,
        "message_id": message_id,
        "run_id": run_id,
        "thread_id": thread_id,
    }


def pong_frame(ping_id: Any, ts: float) -> dict[str, Any]:
    return {"type": "pong", "id": ping_id, "ts": ts}


def resume_done_frame(thread_id: str, last_seq: int) -> dict[str, Any]:
    return {"type": "resume_done", "thread_id": thread_id, "last_seq": last_seq}


def error_frame(
    error: TargetError, *, client_msg_id: str | None = None, thread_id: str | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if client_msg_id is not None:
        frame["client_msg_id"] = client_msg_id
    if thread_id is not None:
        frame["thread_id"] = thread_id
    return frame


def event_seq(event: dict[str, Any]) -> tuple[ThreadID, int] | None:
    """``(thread_id, seq)`` of a thread event, ``None`` when the dict is not one."""
    thread_id = event.get("thread_id")
    seq = event.get("seq")
    if not isinstance(thread_id, str) or isinstance(seq, bool) or not isinstance(seq, int):
        return None
    return ThreadID(thread_id), seq
