"""A fresh socket that sees live events of a thread before its ``resume`` is processed.

The interleaving ``platform_races`` met under load: the old socket had delivered seq 1-3
and closed; the new socket got seq 4 live, then the client's ``resume after_seq=3``.
"""

from __future__ import annotations

from squall.target.ids import ThreadID
from squall.target.ordering import Sequencer, Step

T = ThreadID("t")


def test_live_event_at_after_seq_plus_one_is_kept_and_the_replay_continues_after_it() -> None:
    seq = Sequencer()
    assert seq.on_live(T, 4) is Step.DELIVER
    token = seq.start_fill(T, 3)
    assert seq.last(T) == 4  # nothing to send again: 4 went out live
    assert seq.on_live(T, 5) is Step.HOLD
    assert seq.accept_page(T, token, [4, 5]) == [1]
    assert seq.finish_fill(T, token)
    assert seq.last(T) == 5  # what resume_done reports
    assert seq.on_live(T, 5) is Step.DROP
    assert seq.on_live(T, 6) is Step.DELIVER


def test_live_events_beyond_after_seq_plus_one_are_sent_again_in_order() -> None:
    seq = Sequencer()
    assert seq.on_live(T, 7) is Step.DELIVER
    token = seq.start_fill(T, 3)
    assert seq.last(T) == 3
    assert seq.accept_page(T, token, [4, 5, 6, 7]) == [0, 1, 2, 3]
    assert seq.finish_fill(T, token)
    assert seq.on_live(T, 8) is Step.DELIVER
