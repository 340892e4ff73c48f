"""Standard output that fails without ending the command (no process, no service)."""

from __future__ import annotations

import io
import os

from squall.output_streams import ForgivingOutput


def test_a_reader_gone_is_said_once_and_what_follows_is_dropped() -> None:
    read, write = os.pipe()
    os.close(read)
    note = io.StringIO()
    with open(write, "w") as stream:
        out = ForgivingOutput(stream, note)
        out.write("x" * 200_000)  # more than a pipe holds: written through at once
        out.flush()
        out.write("after\n")
        out.flush()
        assert isinstance(out.failed, BrokenPipeError)
        assert not out.isatty()
        # The descriptor now points at the null device: closing flushes nothing that fails.
    assert note.getvalue().count("standard output failed (Broken pipe)") == 1


def test_a_character_the_encoding_lacks_is_written_as_a_question_mark() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")
    out = ForgivingOutput(stream, None)
    out.write("✗ threshold é\n")
    out.flush()
    assert raw.getvalue() == "? threshold é\n".encode("latin-1")
    assert out.failed is None


def test_what_it_does_not_guard_is_the_stream_s_own() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    out = ForgivingOutput(stream, None)
    assert out.encoding == "utf-8"
    assert out.buffer is stream.buffer


def test_a_standard_output_closed_from_the_start_reads_as_open_to_writers() -> None:
    # The note's method was called `closed`, hiding the attribute every file has: click's
    # echo then took standard output for closed and `squall version >&-` crashed.
    note = io.StringIO()
    with open(os.devnull, "w") as stream:
        out = ForgivingOutput(stream, note)
        out.closed_from_the_start()
        assert out.closed is False
        out.write("dropped\n")
    assert note.getvalue().count("standard output failed (Bad file descriptor)") == 1
