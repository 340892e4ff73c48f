"""Ordering with ``resume_restarts``: the reference protocol's documented resume window."""

from __future__ import annotations

import itertools

from squall.checks.history import HistoryRecorder, Op
from squall.checks.ordering import check_ordering


class Socket:
    def __init__(self) -> None:
        ticks = itertools.count()
        self.rec = HistoryRecorder(clock=lambda: next(ticks))
        self.resume_op: Op | None = None

    def events(self, *seqs: int) -> Socket:
        for seq in seqs:
            self.rec.observe("s", "event", {"thread": "t", "seq": seq})
        return self

    def resume(self, after: int) -> Socket:
        self.resume_op = self.rec.invoke("s", "resume", {"thread": "t", "after_seq": after})
        return self

    def done(self, last: int) -> Socket:
        assert self.resume_op is not None
        self.rec.ok(self.resume_op, {"last_seq": last})
        return self

    def check(self) -> tuple[bool | None, list[str], dict[str, int]]:
        verdict = check_ordering(self.rec.ops, first_seq=1, resume_restarts=True)
        return verdict.valid, [e.kind for e in verdict.evidence], dict(verdict.counts)


def test_live_events_overtaking_the_replay_are_tolerated_then_the_stream_restarts() -> None:
    valid, kinds, counts = Socket().resume(3).events(5, 6, 4, 5, 6, 7).done(7).events(8).check()
    assert (valid, kinds) == (True, [])
    assert counts["early_live"] == 2
    assert counts["resumes"] == 1


def test_a_plain_replay_passes_and_live_events_continue_after_resume_done() -> None:
    valid, kinds, _ = Socket().resume(2).events(3, 4).done(4).events(5, 6).check()
    assert (valid, kinds) == (True, [])


def test_replay_that_skips_the_first_missed_event_is_a_gap() -> None:
    valid, kinds, counts = Socket().resume(2).events(4, 5).done(5).check()
    assert valid is False
    assert kinds == ["gap"]
    assert counts["gaps"] == 1


def test_replay_repeating_an_event_at_or_below_after_seq_is_a_duplicate() -> None:
    valid, kinds, _ = Socket().resume(3).events(3, 4).done(4).check()
    assert valid is False
    assert kinds == ["duplicate"]


def test_overtaking_events_must_rise() -> None:
    valid, kinds, _ = Socket().resume(3).events(6, 6, 4, 5, 6).done(6).check()
    assert valid is False
    assert kinds == ["duplicate"]


def test_an_empty_replay_is_fine_and_sets_the_next_seq() -> None:
    valid, kinds, _ = Socket().events(1, 2).resume(2).done(2).events(3).check()
    assert (valid, kinds) == (True, [])
    valid, kinds, _ = Socket().events(1, 2).resume(2).done(2).events(5).check()
    assert (valid, kinds) == (False, ["gap"])


def test_resuming_inside_the_own_stream_continues_after_the_last_delivered() -> None:
    valid, kinds, _ = Socket().events(1, 2, 3, 4).resume(1).events(5).done(5).check()
    assert (valid, kinds) == (True, [])


def test_without_the_option_the_marker_rules_are_unchanged() -> None:
    socket = Socket().resume(3)
    socket.done(3).events(4, 5)
    assert check_ordering(socket.rec.ops).valid is True


def test_a_replay_that_delivers_nothing_while_events_were_missed_is_a_gap() -> None:
    # resume_done says seq 3 was delivered, but no event reached the socket at all.
    valid, kinds, counts = Socket().resume(2).done(3).check()
    assert (valid, kinds) == (False, ["gap"])
    assert counts["events"] == 0


def test_a_resume_with_nothing_to_replay_and_no_events_is_judged() -> None:
    valid, kinds, counts = Socket().resume(2).done(2).check()
    assert (valid, kinds) == (True, [])
    assert counts["resumes"] == 1


def test_a_replay_whose_tail_never_arrived_is_a_gap() -> None:
    socket = Socket().events(1, 2).resume(2).events(3).done(5)
    verdict = check_ordering(socket.rec.ops, first_seq=1, resume_restarts=True)
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "gap"
    assert evidence.details == {"socket": "s", "thread": "t", "expected": 4, "got": None}
    assert [(op.f, op.type) for op in evidence.ops] == [
        ("event", "ok"),
        ("resume", "invoke"),
        ("resume", "ok"),
    ]
    assert "last_seq 5" in evidence.message


def test_an_overtaking_event_the_restarted_replay_did_not_send_again_is_a_gap() -> None:
    # 2 came live, the replay restarted at 1 and then ended without sending 2 in order.
    valid, kinds, _ = Socket().resume(0).events(2, 1).done(2).check()
    assert (valid, kinds) == (False, ["gap"])


def test_a_tracked_stream_keeps_flowing_live_until_the_resume_is_processed() -> None:
    # The socket already delivered 3; 4 came live before the platform processed the
    # resume after 4, which then had nothing to replay.
    valid, kinds, _ = Socket().events(3).resume(4).events(4).done(4).events(5).check()
    assert (valid, kinds) == (True, [])
    # Behind after_seq, the replay jumps to after_seq + 1 once it is processed.
    valid, kinds, _ = Socket().events(1).resume(3).events(2, 4).done(4).check()
    assert (valid, kinds) == (True, [])


def test_a_tracked_stream_that_skips_ahead_during_the_resume_is_a_gap() -> None:
    # After 2 the socket must fill 3 and 4 before 5, resume pending or not.
    socket = Socket().events(2).resume(1).events(5, 3, 4, 5).done(5)
    verdict = check_ordering(socket.rec.ops, first_seq=1, resume_restarts=True)
    assert verdict.valid is False
    first = verdict.evidence[0]
    assert (first.kind, first.details["expected"], first.details["got"]) == ("gap", 3, 5)


def test_overtaking_events_must_rise_by_one() -> None:
    valid, kinds, _ = Socket().resume(1).events(5, 7, 2, 3, 4, 5, 6, 7).done(7).check()
    assert valid is False
    assert kinds[0] == "gap"


def test_a_lone_resume_marker_restarts_nothing() -> None:
    # A resume marker recorded on its own (observed, no invoke before it) opens no replay
    # window: the plain rules judge it, as they judge any marker (it moves the stream past
    # seq 5), so a 3 after it is a duplicate, not forgiven as part of a replay.
    clock = itertools.count()
    rec = HistoryRecorder(clock=lambda: next(clock))
    for seq in (1, 2):
        rec.observe("s1", "event", {"thread": "t", "seq": seq})
    rec.observe("s1", "resume", {"thread": "t", "after_seq": 5})
    rec.observe("s1", "event", {"thread": "t", "seq": 3})
    verdict = check_ordering(rec.ops, resume_restarts=True)
    assert verdict.valid is False
    assert "duplicate" in [e.kind for e in verdict.evidence]
