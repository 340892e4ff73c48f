"""Per-socket delivery decisions: live events, gaps, resumes and their interleavings."""

from __future__ import annotations

from squall.target.ids import ThreadID
from squall.target.ordering import Sequencer, Step

T = ThreadID("t")
U = ThreadID("u")


def test_in_order_and_duplicates() -> None:
    seq = Sequencer()
    assert seq.on_live(T, 5) is Step.DELIVER  # first sight starts delivery
    assert seq.on_live(T, 6) is Step.DELIVER
    assert seq.on_live(T, 6) is Step.DROP
    assert seq.on_live(T, 2) is Step.DROP
    assert seq.on_live(U, 1) is Step.DELIVER
    assert seq.last(T) == 6
    assert seq.last(U) == 1


def test_gap_fill_holds_live_events_until_replay_catches_up() -> None:
    seq = Sequencer()
    seq.on_live(T, 1)
    assert seq.on_live(T, 4) is Step.FILL
    token = seq.start_fill(T, None)
    assert seq.on_live(T, 5) is Step.HOLD  # arrives while the replay is in flight
    assert seq.accept_page(T, token, [2, 3, 4]) == [0, 1, 2]
    assert not seq.finish_fill(T, token)  # 5 was seen live, replay it too
    assert seq.accept_page(T, token, [5]) == [0]
    assert seq.finish_fill(T, token)
    assert seq.on_live(T, 5) is Step.DROP
    assert seq.on_live(T, 6) is Step.DELIVER


def test_resume_resets_cursor_and_skips_what_the_page_repeats() -> None:
    seq = Sequencer()
    seq.on_live(T, 7)
    token = seq.start_fill(T, 2)
    assert seq.on_live(T, 8) is Step.HOLD
    assert seq.accept_page(T, token, [3, 4, 5, 6, 7, 8]) == [0, 1, 2, 3, 4, 5]
    assert seq.finish_fill(T, token)
    assert seq.last(T) == 8


def test_resume_inside_the_delivered_range_sends_nothing_twice() -> None:
    seq = Sequencer()
    for n in (1, 2, 3):
        assert seq.on_live(T, n) is Step.DELIVER
    token = seq.start_fill(T, 1)  # the client has read 1; 2 and 3 are on their way
    assert seq.last(T) == 3
    assert seq.accept_page(T, token, [2, 3, 4]) == [2]
    assert seq.finish_fill(T, token)


def test_resume_beyond_what_was_delivered_skips_ahead() -> None:
    seq = Sequencer()
    seq.on_live(T, 1)
    token = seq.start_fill(T, 5)
    assert seq.accept_page(T, token, [6]) == [0]
    assert seq.finish_fill(T, token)
    assert seq.on_live(T, 5) is Step.DROP


def test_newer_fill_supersedes_older() -> None:
    seq = Sequencer()
    seq.on_live(T, 1)
    assert seq.on_live(T, 3) is Step.FILL
    old = seq.start_fill(T, None)
    new = seq.start_fill(T, 0)  # a resume arrives meanwhile
    assert old != new
    assert seq.accept_page(T, old, [2, 3]) is None
    assert seq.accept_page(T, new, [1, 2, 3]) == [1, 2]  # 1 went out already
    assert seq.finish_fill(T, new)


def test_abort_forgets_the_thread() -> None:
    seq = Sequencer()
    token = seq.start_fill(T, 0)
    seq.abort_fill(T, token)
    assert seq.last(T) is None
    assert seq.on_live(T, 9) is Step.DELIVER
    assert "threads=1" in repr(seq)


def test_resync_starts_a_gap_fill_for_every_thread_not_filling() -> None:
    seq = Sequencer()
    seq.on_live(T, 1)
    seq.on_live(U, 7)
    assert seq.threads() == [T, U]
    assert seq.resync(T)
    assert seq.resync(U)
    assert not seq.resync(ThreadID("never-seen"))
    token = seq.start_fill(T, None)
    assert seq.accept_page(T, token, [2, 3]) == [0, 1]  # missed while pub/sub was down
    assert seq.finish_fill(T, token)
    assert seq.on_live(T, 3) is Step.DROP  # published late: not sent twice
    assert seq.on_live(T, 4) is Step.DELIVER


def test_resync_during_a_resume_makes_it_read_once_more_instead_of_superseding_it() -> None:
    seq = Sequencer()
    token = seq.start_fill(T, 0)  # a resume: it must end (resume_done), not be superseded
    assert not seq.resync(T)  # no second fill
    assert seq.accept_page(T, token, [1, 2]) == [0, 1]
    assert not seq.finish_fill(T, token)  # one more page: what was missed meanwhile
    assert seq.accept_page(T, token, [3]) == [0]
    assert seq.finish_fill(T, token)
    assert seq.last(T) == 3


def test_an_acked_run_on_an_unseen_thread_is_expected_until_delivery_starts() -> None:
    seq = Sequencer()
    assert seq.expected() == []
    seq.expect(T, "r1")
    seq.expect(T, "r2")  # the first acked run is the one to replay from
    assert seq.expected() == [(T, "r1")]
    assert seq.expected_run(T) == "r1"
    assert seq.expected_run(T) != "r2"
    assert seq.on_live(T, 7) is Step.DELIVER  # live delivery began: nothing to replay
    assert seq.expected() == []
    assert seq.expected_run(T) != "r1"
    seq.expect(T, "r3")  # a thread with a cursor is covered by resync's gap fill
    assert seq.expected() == []


def test_replaying_an_expected_run_starts_the_thread_at_its_first_event() -> None:
    seq = Sequencer()
    seq.expect(U, "r1")
    token = seq.start_fill(U, 11)  # the run's first event is seq 12
    assert seq.expected() == []
    assert seq.accept_page(U, token, [12, 13, 14]) == [0, 1, 2]
    assert seq.finish_fill(U, token)
    assert seq.on_live(U, 14) is Step.DROP
    assert seq.on_live(U, 15) is Step.DELIVER


def test_a_first_live_event_that_is_not_the_acked_run_start_holds_for_a_run_fill() -> None:
    seq = Sequencer()
    seq.expect(T, "r1")
    assert seq.expected_run(T) == "r1"
    token = seq.start_run_fill(T, 9)  # seq 9 is mid-run: the start may have been lost
    assert seq.expected_run(T) is None
    assert seq.on_live(T, 10) is Step.HOLD
    # The run's first event turns out to be seq 6: replay from there, in order, once.
    newer = seq.start_fill(T, 5)
    assert seq.accept_page(T, token, [6]) is None  # the first token is superseded
    assert seq.accept_page(T, newer, [6, 7, 8, 9, 10]) == [0, 1, 2, 3, 4]
    assert seq.finish_fill(T, newer)
    assert seq.on_live(T, 11) is Step.DELIVER


def test_a_run_fill_that_finds_nothing_earlier_starts_at_the_live_event() -> None:
    seq = Sequencer()
    seq.expect(T, "r1")
    seq.start_run_fill(T, 9)
    token = seq.start_fill(T, 8)  # the acked run has stored nothing before seq 9
    assert seq.accept_page(T, token, [9]) == [0]
    assert seq.finish_fill(T, token)
    assert seq.last(T) == 9
