"""Client frame parsing and server frame encoding, with literal inputs."""

from __future__ import annotations

import json

import pytest

from squall.target import protocol
from squall.target.errors import (
    BadFrame,
    ContentTooLarge,
    FrameTooLarge,
    InvalidField,
    NotFound,
    TargetError,
    UnknownType,
)
from squall.target.ids import ThreadID


def parse(raw: str | bytes, max_frame: int = 1000, max_content: int = 50) -> protocol.ClientFrame:
    return protocol.parse_frame(raw, max_frame_bytes=max_frame, max_content_chars=max_content)


def test_user_message() -> None:
    frame = parse(
        '{"type":"user_message","thread_id":"a.B_1:-x","content":"hi","client_msg_id":"c"}'
    )
    assert frame == protocol.UserMessage(thread_id="a.B_1:-x", content="hi", client_msg_id="c")  # type: ignore[arg-type]


def test_a_frame_that_is_not_json_says_which_kind_it_was() -> None:
    with pytest.raises(BadFrame, match=r"^binary frame is not valid UTF-8 JSON \("):
        parse(b"\x00\x01binary")
    with pytest.raises(BadFrame, match=r"^frame is not valid UTF-8 JSON \("):
        parse("not json")


def test_resume_and_ping() -> None:
    assert parse(b'{"type":"resume","thread_id":"t","after_seq":0}') == protocol.Resume("t", 0)  # type: ignore[arg-type]
    assert parse('{"type":"ping","id":[1,"x"]}') == protocol.Ping(id=[1, "x"])
    assert parse('{"type":"ping"}') == protocol.Ping(id=None)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{nope", BadFrame),
        (b"\xff\xfe", BadFrame),
        ("[]", BadFrame),
        ('"text"', BadFrame),
        ('{"kind":"ping"}', BadFrame),
        ('{"type":7}', BadFrame),
        ('{"type":"dance"}', UnknownType),
        ('{"type":"user_message","content":"x","client_msg_id":"c"}', InvalidField),
        ('{"type":"user_message","thread_id":"","content":"x","client_msg_id":"c"}', InvalidField),
        (
            '{"type":"user_message","thread_id":"a b","content":"x","client_msg_id":"c"}',
            InvalidField,
        ),
        (
            '{"type":"user_message","thread_id":"'
            + "t" * 65
            + '","content":"","client_msg_id":"c"}',
            InvalidField,
        ),
        ('{"type":"user_message","thread_id":"t","content":5,"client_msg_id":"c"}', InvalidField),
        ('{"type":"user_message","thread_id":"t","content":"x"}', InvalidField),
        ('{"type":"user_message","thread_id":"t","content":"x","client_msg_id":""}', InvalidField),
        (
            '{"type":"user_message","thread_id":"t","content":"'
            + "x" * 51
            + '","client_msg_id":"c"}',
            ContentTooLarge,
        ),
        ('{"type":"resume","thread_id":"t"}', InvalidField),
        ('{"type":"resume","thread_id":"t","after_seq":-1}', InvalidField),
        ('{"type":"resume","thread_id":"t","after_seq":true}', InvalidField),
        ('{"type":"resume","thread_id":"t","after_seq":"3"}', InvalidField),
        ('{"type":"resume","thread_id":"t","after_seq":9223372036854775808}', InvalidField),
        ('{"type":"ping","id":NaN}', BadFrame),
        ('{"type":"ping","id":-Infinity}', BadFrame),
        ('{"type":"ping","id":1e400}', BadFrame),
        (
            '{"type":"user_message","thread_id":"t","content":"a\\u0000b","client_msg_id":"c"}',
            BadFrame,
        ),
        ('{"type":"ping","id":{"k\\u0000":1}}', BadFrame),
    ],
)
def test_rejections(raw: str | bytes, error: type[TargetError]) -> None:
    with pytest.raises(error) as caught:
        parse(raw)
    assert caught.value.message


def test_frame_size_is_checked_before_parsing_in_bytes() -> None:
    with pytest.raises(FrameTooLarge, match="1001 bytes"):
        parse("x" * 1001)
    # 400 two-byte characters are 800 bytes of UTF-8 but 400 characters: the limit is bytes.
    with pytest.raises(FrameTooLarge):
        parse(json.dumps({"type": "ping", "id": "é" * 600}, ensure_ascii=False))
    content = "é" * 50
    frame = parse(
        json.dumps(
            {"type": "user_message", "thread_id": "t", "content": content, "client_msg_id": "c"},
            ensure_ascii=False,
        )
    )
    assert isinstance(frame, protocol.UserMessage)
    assert frame.content == content


def test_error_context_is_best_effort() -> None:
    assert protocol.error_context(None) == {}
    assert protocol.error_context({"client_msg_id": "c", "thread_id": 3}) == {"client_msg_id": "c"}
    assert protocol.error_context({"thread_id": "t"}) == {"thread_id": "t"}


def test_server_frames() -> None:
    error = protocol.error_frame(NotFound("gone"), client_msg_id="c", thread_id="t")
    assert error == {
        "type": "error",
        "code": "not_found",
        "message": "gone",
        "client_msg_id": "c",
        "thread_id": "t",
    }
    assert protocol.error_frame(BadFrame("x")) == {
        "type": "error",
        "code": "bad_frame",
        "message": "x",
    }
    assert protocol.ack_frame("c", "m", "r", "t") == {
        "type": "ack",
        "client_msg_id": "c",
        "message_id": "m",
        "run_id": "r",
        "thread_id": "t",
    }
    assert protocol.pong_frame(None, 1.5) == {"type": "pong", "id": None, "ts": 1.5}
    assert protocol.resume_done_frame("t", 9) == {
        "type": "resume_done",
        "thread_id": "t",
        "last_seq": 9,
    }
    assert protocol.hello_frame(12, "s", "u", None) == {
        "type": "hello",
        "worker": 12,
        "socket_id": "s",
        "user_id": "u",
    }
    assert protocol.hello_frame(12, "s", "u", 3)["session"] == 3
    assert protocol.encode({"type": "x", "text": "é"}) == '{"type":"x","text":"é"}'


def test_event_seq() -> None:
    assert protocol.event_seq({"thread_id": "t", "seq": 4}) == ("t", 4)
    assert protocol.event_seq({"thread_id": "t", "seq": True}) is None
    assert protocol.event_seq({"seq": 4}) is None


def test_what_postgresql_and_strict_parsers_cannot_take_is_named() -> None:
    with pytest.raises(BadFrame, match=r"NaN is not a JSON number"):
        parse('{"type":"ping","id":NaN}')
    with pytest.raises(BadFrame, match=r"the number 1e400 is too large"):
        parse(b'{"type":"ping","id":1e400}')
    with pytest.raises(BadFrame, match=r"NUL character"):
        parse(b'{"type":"ping","id":["\\u0000"]}')
    with pytest.raises(BadFrame, match=r"nest too deeply"):
        parse("[" * 30000 + "]" * 30000, max_frame=65536)
    with pytest.raises(BadFrame, match=r"nest too deeply"):
        parse('{"type":"ping","id":' + "[" * 900 + '"\\u0000"' + "]" * 900 + "}", max_frame=65536)
    # A lone surrogate can be written in JSON but sent back or stored nowhere; a pair is
    # one character (an emoji here) and fine; text frames' bytes must be UTF-8.
    with pytest.raises(BadFrame, match=r"lone UTF-16 surrogate"):
        parse('{"type":"ping","id":"\\ud800"}')
    with pytest.raises(BadFrame, match=r"lone UTF-16 surrogate"):
        parse(b'{"type":"ping","id":{"\\uDC00":1}}')
    assert parse('{"type":"ping","id":"\\ud83d\\ude00"}') == protocol.Ping(id="\U0001f600")
    with pytest.raises(BadFrame, match=r"not valid UTF-8 JSON"):
        parse('{"type":"ping"}'.encode("utf-16"))
    # An escaped backslash followed by the text u0000 is no NUL; the largest bigint is fine.
    assert parse('{"type":"ping","id":"\\\\u0000"}') == protocol.Ping(id="\\u0000")
    assert parse('{"type":"ping","id":123456789012345678901234567890}') == protocol.Ping(
        id=123456789012345678901234567890
    )
    resume = parse('{"type":"resume","thread_id":"t","after_seq":9223372036854775807}')
    assert resume == protocol.Resume(thread_id=ThreadID("t"), after_seq=protocol.MAX_BIGINT)
