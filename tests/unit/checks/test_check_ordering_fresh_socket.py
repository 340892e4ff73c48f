"""Ordering with ``resume_restarts`` on a socket that saw live events before its ``resume``.

The first history is the one ``platform_races`` recorded when it failed with "expected
seq 1, got 4": the resuming socket received seq 4 live (even before ``hello``) and only
then sent ``resume after_seq=3``; the platform continued after 4, as documented.
"""

from __future__ import annotations

import itertools

from squall.checks.history import HistoryRecorder, Op
from squall.checks.ordering import check_ordering

SOCKET = "ok:resume-b"
THREAD = "ok-resume"


class Socket:
    def __init__(self, process: str = SOCKET) -> None:
        ticks = itertools.count()
        self.process = process
        self.rec = HistoryRecorder(clock=lambda: next(ticks))
        self.resume_op: Op | None = None

    def events(self, *seqs: int) -> Socket:
        for seq in seqs:
            self.rec.observe(self.process, "event", {"thread": THREAD, "seq": seq})
        return self

    def resume(self, after: int) -> Socket:
        self.resume_op = self.rec.invoke(
            self.process, "resume", {"thread": THREAD, "after_seq": after}
        )
        return self

    def done(self, last: int) -> Socket:
        assert self.resume_op is not None
        self.rec.ok(self.resume_op, {"last_seq": last})
        return self

    def check(self) -> tuple[bool | None, list[str], dict[str, int]]:
        verdict = check_ordering(self.rec.ops, first_seq=1, resume_restarts=True)
        return verdict.valid, [e.kind for e in verdict.evidence], dict(verdict.counts)


def test_the_recorded_failure_live_event_before_the_resume_is_in_order() -> None:
    socket = Socket()
    connect = socket.rec.invoke(SOCKET, "connect", {"user": "ok-u-1"})
    socket.events(4)  # dispatched by the hub before hello reached the client
    socket.rec.ok(connect, {"worker": 1, "session": None})
    socket.resume(3).done(4).events(5, 6, 7)
    valid, kinds, counts = socket.check()
    assert (valid, kinds) == (True, [])
    assert counts["resumes"] == 1
    assert counts["events"] == 4


def test_live_events_beyond_after_seq_plus_one_make_the_replay_restart() -> None:
    valid, kinds, counts = Socket().events(7).resume(3).events(8, 4, 5, 6, 7, 8, 9).done(9).check()
    assert (valid, kinds) == (True, [])
    assert counts["early_live"] == 1


def test_without_that_restart_the_missed_events_are_a_gap() -> None:
    valid, kinds, _ = Socket().events(7).resume(3).done(7).events(8).check()
    assert valid is False
    assert kinds == ["gap"]


def test_a_restart_must_begin_at_after_seq_plus_one() -> None:
    valid, kinds, _ = Socket().events(7).resume(3).events(5, 6, 7, 8).done(8).check()
    assert valid is False
    assert "gap" in kinds  # seq 4 never came; the replay ended past it


def test_events_before_the_resume_must_still_rise_by_one() -> None:
    valid, kinds, _ = Socket().events(4, 6).resume(3).done(6).events(7).check()
    assert (valid, kinds) == (False, ["gap"])


def test_the_replay_must_not_repeat_what_the_socket_got_live() -> None:
    valid, kinds, _ = Socket().events(4).resume(3).events(4, 5).done(5).check()
    assert valid is False
    assert kinds == ["duplicate"]


def test_a_socket_that_never_resumes_must_start_at_first_seq() -> None:
    late = Socket("other").events(4, 5)
    valid, kinds, _ = late.check()
    assert (valid, kinds) == (False, ["gap"])


def test_resume_done_before_the_next_live_event_inside_the_own_stream_is_fine() -> None:
    valid, kinds, _ = Socket().events(1, 2, 3, 4).resume(1).done(4).events(5).check()
    assert (valid, kinds) == (True, [])


def test_resume_done_beyond_what_the_own_stream_got_is_a_gap() -> None:
    valid, kinds, _ = Socket().events(1, 2, 3, 4).resume(1).done(6).events(7).check()
    assert valid is False
    assert kinds == ["gap"]
