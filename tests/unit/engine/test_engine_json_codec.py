"""The wire JSON codec gives exactly what the json module gives, errors included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from squall.engine import json_codec

VALUES: list[Any] = [
    {"type": "echo", "pad": "x" * 40},
    {"nested": {"list": [1, 2.5, -0.0, None, True, False]}, "text": 'é ✓ \u2028 "q"'},
    [],
    {},
    "plain",
    12345678901234567890,
    1e-7,
    {"inf": float("inf"), "nan": float("nan")},
    {1: "int key", None: "none key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_compact_json_dumps(value: Any) -> None:
    assert json_codec.dumps(value) == json.dumps(value, separators=(",", ":"))


TEXTS: list[str | bytes] = [
    '{"a":1}',
    ' {"a": [1, 2]} \n',
    '"x"',
    "3.25",
    "NaN",
    b'{"bytes":true}',
    '{"a":1}trailing',
    '{"a":1',
    "",
    "nul",
    '{"a":"\\ud800"}',
]


@pytest.mark.parametrize("text", TEXTS)
def test_loads_is_json_loads_with_the_same_errors(text: str | bytes) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            json_codec.loads(text)
    else:
        got = json_codec.loads(text)
        assert json.dumps(got) == json.dumps(expected)


def test_encoder_recovers_after_errors() -> None:
    circular: list[Any] = []
    circular.append(circular)
    for _ in range(2):
        with pytest.raises(ValueError, match="Circular reference"):
            json_codec.dumps({"loop": circular})
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_codec.dumps({"when": object()})
    shared = {"k": 1}
    assert json_codec.dumps([shared, shared]) == '[{"k":1},{"k":1}]'
