"""A history whose events were cut past a socket's bound is never judged valid by omission."""

from __future__ import annotations

import itertools

from squall.checks.history import EVENTS_CUT, EVENTS_UNRECORDED, HistoryRecorder, cut_text
from squall.checks.isolation import check_isolation
from squall.checks.ordering import check_ordering


def test_a_cut_with_no_event_recorded_fails_instead_of_being_not_applicable() -> None:
    ticks = itertools.count()
    recorder = HistoryRecorder(clock=lambda: next(ticks))
    recorder.observe("s", EVENTS_CUT, {"of": "event", "recorded": 0, "limit": 10})
    recorder.observe("s", EVENTS_UNRECORDED, {"of": "event", "events": 3})
    recorder.observe("s", EVENTS_UNRECORDED, {"of": "event", "events": 4})
    ops = recorder.ops
    for verdict in (
        check_ordering(ops, first_seq=1),
        check_isolation(ops, thread_owner={}, socket_user={"s": "alice"}),
    ):
        assert verdict.valid is False
        [evidence] = verdict.evidence
        assert evidence.kind == "history-cut"
        assert evidence.details == {"socket": "s", "recorded": 0, "unrecorded": 7}
        assert verdict.counts["events_unrecorded"] == 7


def test_a_history_without_a_cut_is_judged_as_before() -> None:
    ticks = itertools.count()
    recorder = HistoryRecorder(clock=lambda: next(ticks))
    recorder.observe("s", "event", {"thread": "t", "seq": 1})
    verdict = check_ordering(recorder.ops, first_seq=1)
    assert verdict.valid is True
    assert "events_unrecorded" not in verdict.counts


def test_cut_text_keeps_short_text_and_cuts_long_text_printably() -> None:
    assert cut_text("alice-t1") == "alice-t1"
    cut = cut_text("\x01" * 1_000, 64)
    assert len(cut) == 64
    assert cut.isprintable()
    assert "cut from 1000 chars" in cut
    assert cut_text("a" * 300) != cut_text("a" * 299 + "b")
