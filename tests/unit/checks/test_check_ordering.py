"""Ordering checker: per (socket, thread) seq streams, across resumes."""

from __future__ import annotations

import itertools

from squall.checks.history import HistoryRecorder, Op
from squall.checks.ordering import check_ordering


class Stream:
    """Builds a history of received events and resume markers."""

    def __init__(self) -> None:
        ticks = itertools.count()
        self.rec = HistoryRecorder(clock=lambda: next(ticks))

    def events(self, socket: str, thread: str, *seqs: int) -> Stream:
        for seq in seqs:
            self.rec.observe(socket, "event", {"thread": thread, "seq": seq})
        return self

    def resume(self, socket: str, thread: str, after: int) -> Stream:
        op = self.rec.invoke(socket, "resume", {"thread": thread, "after_seq": after})
        self.rec.ok(op)
        return self

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.rec.ops


def test_in_order_streams_interleaved_across_sockets_and_threads_pass() -> None:
    ops = (
        Stream()
        .events("s1", "t1", 1, 2)
        .events("s2", "t1", 5)
        .events("s1", "t2", 1)
        .events("s1", "t1", 3)
        .events("s2", "t1", 6)
        .ops
    )
    verdict = check_ordering(ops)
    assert verdict.valid is True
    assert verdict.counts["streams"] == 3
    assert verdict.counts["events"] == 6


def test_resume_continues_from_after_seq() -> None:
    ops = Stream().events("s1", "t1", 1, 2, 3).resume("s1", "t1", 2).events("s1", "t1", 3, 4).ops
    verdict = check_ordering(ops)
    assert verdict.valid is True
    assert verdict.counts["resumes"] == 1


def test_gap_names_socket_thread_expected_got_and_surroundings() -> None:
    ops = Stream().events("s1", "t1", 1, 2).events("s2", "t1", 1).events("s1", "t1", 4, 5).ops
    verdict = check_ordering(ops)
    assert verdict.valid is False
    assert verdict.counts["gaps"] == 1
    [evidence] = verdict.evidence
    assert evidence.kind == "gap"
    assert evidence.details == {"socket": "s1", "thread": "t1", "expected": 3, "got": 4}
    assert [op.get("seq") for op in evidence.ops] == [2, 4]


def test_duplicate_is_caught() -> None:
    verdict = check_ordering(Stream().events("s1", "t1", 1, 2, 2, 3).ops)
    assert verdict.valid is False
    assert verdict.counts["duplicates"] == 1
    assert verdict.evidence[0].details["expected"] == 3
    assert verdict.evidence[0].details["got"] == 2


def test_resume_that_skips_an_event_is_a_gap_with_the_marker_as_evidence() -> None:
    ops = Stream().events("s1", "t1", 1, 2).resume("s1", "t1", 2).events("s1", "t1", 4).ops
    verdict = check_ordering(ops)
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert (evidence.details["expected"], evidence.details["got"]) == (3, 4)
    assert [op.f for op in evidence.ops] == ["event", "resume", "event"]
    assert "after resume" in evidence.message


def test_replay_after_resume_that_repeats_is_a_duplicate() -> None:
    ops = Stream().events("s1", "t1", 1, 2, 3).resume("s1", "t1", 3).events("s1", "t1", 3).ops
    verdict = check_ordering(ops)
    assert verdict.valid is False
    assert verdict.evidence[0].kind == "duplicate"


def test_first_seq_is_enforced_when_given() -> None:
    ops = Stream().events("s1", "t1", 2, 3).ops
    assert check_ordering(ops).valid is True
    verdict = check_ordering(ops, first_seq=1)
    assert verdict.valid is False
    assert verdict.evidence[0].details["expected"] == 1


def test_no_events_is_not_applicable() -> None:
    verdict = check_ordering(Stream().ops)
    assert verdict.valid is None
    assert verdict.summary.startswith("not applicable")


def test_a_replayed_run_of_events_counts_each_duplicate() -> None:
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    for seq in (1, 2, 3, 2, 3, 4):
        rec.observe("s1", "event", {"thread": "t", "seq": seq})
    verdict = check_ordering(rec.ops)
    assert verdict.valid is False
    assert verdict.counts["duplicates"] == 2
