"""Ordering: an event whose seq is not an integer is its own evidence, not a duplicate."""

from __future__ import annotations

import itertools

import pytest

from squall.checks.history import SHOWN_CHARS, HistoryRecorder, JsonValue, Op
from squall.checks.ordering import check_ordering

MISSING = object()


class Stream:
    """One socket ``s``'s received events of thread ``t`` (run ``r``), seq as given."""

    def __init__(self) -> None:
        ticks = itertools.count()
        self.rec = HistoryRecorder(clock=lambda: next(ticks))
        self.resume_op: Op | None = None

    def events(self, *seqs: JsonValue | object) -> Stream:
        for seq in seqs:
            value: dict[str, JsonValue] = {"thread": "t", "run": "r"}
            if seq is not MISSING:
                value["seq"] = seq  # type: ignore[assignment]
            self.rec.observe("s", "event", value)
        return self

    def resume(self, after: int) -> Stream:
        self.resume_op = self.rec.invoke("s", "resume", {"thread": "t", "after_seq": after})
        return self

    def done(self, last: int) -> Stream:
        assert self.resume_op is not None
        self.rec.ok(self.resume_op, {"last_seq": last})
        return self


@pytest.mark.parametrize(
    ("seq", "raw"),
    [(True, "true"), (False, "false"), ("3", '"3"'), (3.0, "3.0"), (None, "null"), ([3], "[3]")],
)
@pytest.mark.parametrize("restarts", [False, True])
def test_a_seq_that_is_not_an_integer_is_malformed_not_a_duplicate(
    seq: JsonValue, raw: str, restarts: bool
) -> None:
    verdict = check_ordering(
        Stream().events(1, 2, seq, 3).rec.ops, first_seq=1, resume_restarts=restarts
    )
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "malformed-seq"
    assert evidence.details == {"socket": "s", "thread": "t", "run": "r", "raw": raw}
    assert evidence.ops[0].get("seq") == seq
    assert f"seq {raw} is not an integer" in evidence.message
    assert "run r" in evidence.message
    counts = verdict.counts
    assert (counts["malformed_seqs"], counts["duplicates"], counts["gaps"]) == (1, 0, 0)
    assert (counts["events"], counts["violations"]) == (4, 1)
    assert "malformed-seq" in verdict.summary


def test_a_missing_seq_is_malformed_and_says_so() -> None:
    verdict = check_ordering(Stream().events(1, MISSING, 2).rec.ops)
    [evidence] = verdict.evidence
    assert (evidence.kind, evidence.details["raw"]) == ("malformed-seq", None)
    assert evidence.message == "socket s thread t: an event of run r has no seq"


def test_malformed_events_do_not_hide_real_gaps_and_duplicates() -> None:
    verdict = check_ordering(Stream().events(1, 2, "x", 2, True, 5).rec.ops)
    assert [e.kind for e in verdict.evidence] == [
        "malformed-seq",
        "duplicate",
        "malformed-seq",
        "gap",
    ]
    assert [(e.details.get("expected"), e.details.get("got")) for e in verdict.evidence] == [
        (None, None),
        (3, 2),
        (None, None),
        (3, 5),
    ]
    counts = verdict.counts
    assert (counts["malformed_seqs"], counts["duplicates"], counts["gaps"]) == (2, 1, 1)
    assert counts["violations"] == 4


def test_a_malformed_first_event_does_not_start_the_stream() -> None:
    # Without first_seq the first *integer* seq sets the start: 7, 8 is in order.
    verdict = check_ordering(Stream().events(None, 7, 8).rec.ops)
    assert [e.kind for e in verdict.evidence] == ["malformed-seq"]
    assert verdict.counts["streams"] == 1


def test_a_malformed_event_during_a_resume_window_leaves_the_window_open() -> None:
    ops = Stream().events(1, 2).resume(2).events("3", 3, 4).done(4).events(5).rec.ops
    verdict = check_ordering(ops, first_seq=1, resume_restarts=True)
    assert [e.kind for e in verdict.evidence] == ["malformed-seq"]
    assert verdict.counts["gaps"] == verdict.counts["duplicates"] == 0


def test_only_malformed_events_are_judged_not_skipped() -> None:
    verdict = check_ordering(Stream().events(True, True).rec.ops)
    assert verdict.valid is False
    assert verdict.counts["malformed_seqs"] == 2


def test_the_raw_value_is_shown_shortened_and_ascii_only() -> None:
    seq = "\x1b[31m" + "é" * 100 + "\n"
    [evidence] = check_ordering(Stream().events(seq).rec.ops).evidence
    raw = evidence.details["raw"]
    assert isinstance(raw, str)
    assert len(raw) == SHOWN_CHARS
    assert raw.isascii()
    assert raw.isprintable()
    assert raw.startswith('"\\u001b[31m\\u00e9')
    assert raw.endswith("...")
    assert raw in evidence.message
    assert evidence.ops[0].get("seq") == seq  # the record itself is whole
