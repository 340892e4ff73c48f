"""Compact JSON for the wire, without the per-call set-up of ``json.dumps`` / ``json.loads``.

``json.dumps(obj, separators=(",", ":"))`` builds a new encoder for every call
and ``json.loads`` runs two regular expressions around the C scanner; for the
small messages a load generator sends and receives, that set-up costs more than
the encoding itself. :func:`dumps` and :func:`loads` call the same C encoder and
scanner directly and give exactly the same text and values (falling back to the
``json`` module for anything the fast path does not cover, such as surrounding
whitespace or bytes), and raise the same errors.

The encoder's circular-reference bookkeeping is one module-level dict, empty
between calls: like the rest of the engine, :func:`dumps` is meant for one
event-loop thread per process.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from typing import Any

# The C accelerators (None where the interpreter has no ``_json``), not in the stubs.
c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
c_make_scanner: Any = getattr(json.scanner, "c_make_scanner", None)

_SEPARATORS = (",", ":")
_reference_encoder = json.JSONEncoder(separators=_SEPARATORS)
#: Ids of the containers being encoded (circular-reference check); empty between calls.
_markers: dict[int, Any] = {}
_encode_chunks = (
    c_make_encoder(
        _markers,
        _reference_encoder.default,
        json.encoder.encode_basestring_ascii,
        None,
        _SEPARATORS[1],
        _SEPARATORS[0],
        False,
        False,
        True,
    )
    if c_make_encoder is not None
    else None
)
_scan_once = c_make_scanner(json.JSONDecoder()) if c_make_scanner is not None else None


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON text (ASCII): ``json.dumps(obj, separators=(",", ":"))``."""
    if _encode_chunks is None:
        encoded: str = _reference_encoder.encode(obj)
        return encoded
    try:
        text: str = "".join(_encode_chunks(obj, 0))
    except BaseException:
        _markers.clear()  # the C encoder leaves the containers it was inside on errors
        raise
    return text


def loads(raw: str | bytes) -> Any:
    """The value of one JSON document: ``json.loads(raw)``; ValueError if it is not JSON."""
    if _scan_once is not None and type(raw) is str:
        try:
            value, end = _scan_once(raw, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(raw):
                return value
    return json.loads(raw)
