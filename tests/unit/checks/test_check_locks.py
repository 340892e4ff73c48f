"""Lock checker: overlapping critical sections, fenced and unfenced."""

from __future__ import annotations

import json

from squall.checks.history import HistoryRecorder, Op, OpType
from squall.checks.locks import check_locks, critical_sections


class Timeline:
    """A recorder whose clock is set explicitly before each record."""

    def __init__(self) -> None:
        self.now = 0
        self.rec = HistoryRecorder(clock=lambda: self.now)
        self.pending: dict[str, Op] = {}

    def at(self, t: int) -> Timeline:
        self.now = t
        return self

    def invoke(self, process: str, f: str, **value: int | str | None) -> Timeline:
        self.pending[process] = self.rec.invoke(process, f, {"key": "lock", **value})
        return self

    def complete(self, process: str, kind: OpType, **value: int | str | None) -> Timeline:
        self.rec.complete(self.pending.pop(process), kind, value)
        return self

    def hold(self, process: str, start: int, end: int, token: int | None = None) -> Timeline:
        """Acquire ok at ``start``, release invoked at ``end`` (and ok right after)."""
        self.at(start - 1).invoke(process, "acquire").at(start).complete(
            process, OpType.OK, token=token
        )
        self.at(end).invoke(process, "release").at(end + 1).complete(process, OpType.OK)
        return self

    def write(self, process: str, start: int, end: int, kind: OpType, token: int | None) -> None:
        self.at(start).invoke(process, "write", token=token).at(end).complete(process, kind)


def test_sequential_holders_pass() -> None:
    t = Timeline().hold("a", 10, 20).hold("b", 30, 40).hold("a", 50, 60)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is True
    assert verdict.counts["sections"] == 3
    assert verdict.counts["overlaps"] == 0


def test_unfenced_overlap_names_both_holders_with_intervals() -> None:
    t = Timeline().hold("a", 10, 50).hold("b", 30, 70)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.kind == "overlap"
    assert evidence.details["earlier"] == {
        "process": "a",
        "start_ns": 10,
        "end_ns": 50,
        "token": None,
        "released": True,
    }
    assert json.loads(json.dumps(evidence.details["later"]))["process"] == "b"
    assert evidence.details["overlap_ns"] == 20
    assert [op.process for op in evidence.ops] == ["a", "b"]
    assert "without fencing tokens" in evidence.message


def test_a_section_inside_a_stale_holders_measures_its_own_length_as_the_overlap() -> None:
    # The stale holder holds from 1 to 100 ms; its successor from 11 to 20 ms.
    t = Timeline().hold("stale", 1_000_000, 100_000_000).hold("next", 11_000_000, 20_000_000)
    [evidence] = check_locks(t.rec.ops, key="lock").evidence
    assert evidence.details["overlap_ns"] == 9_000_000
    assert "both held the lock for 9.000 ms" in evidence.message


def test_fenced_overlap_with_rejected_stale_write_passes() -> None:
    t = Timeline()
    t.at(9).invoke("a", "acquire").at(10).complete("a", OpType.OK, token=1)
    t.write("a", 12, 14, OpType.OK, 1)  # before b acquired: accepted and fine
    t.at(29).invoke("b", "acquire").at(30).complete("b", OpType.OK, token=2)
    t.write("b", 31, 32, OpType.OK, 2)
    t.write("a", 40, 41, OpType.FAIL, 1)  # stale, rejected
    t.at(50).invoke("a", "release").at(51).complete("a", OpType.FAIL)
    t.at(60).invoke("b", "release").at(61).complete("b", OpType.OK)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is True, verdict.summary
    assert verdict.counts["fenced_overlaps"] == 1
    assert verdict.counts["stale_writes_rejected"] == 1


def test_fenced_overlap_with_an_accepted_stale_write_fails_and_shows_the_write() -> None:
    t = Timeline()
    t.at(9).invoke("a", "acquire").at(10).complete("a", OpType.OK, token=1)
    t.at(29).invoke("b", "acquire").at(30).complete("b", OpType.OK, token=2)
    t.write("a", 40, 41, OpType.OK, 1)
    t.at(50).invoke("a", "release").at(51).complete("a", OpType.OK)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is False
    [evidence] = verdict.evidence
    assert evidence.details["stale_writes_accepted"] == 1
    assert [(op.f, op.type) for op in evidence.ops][2:] == [
        ("write", OpType.INVOKE),
        ("write", OpType.OK),
    ]


def test_write_in_flight_when_the_successor_acquired_counts_as_stale() -> None:
    t = Timeline()
    t.at(9).invoke("a", "acquire").at(10).complete("a", OpType.OK, token=1)
    t.write("a", 25, 35, OpType.OK, 1)  # invoked before, landed after b acquired
    t.at(29).invoke("b", "acquire").at(30).complete("b", OpType.OK, token=2)
    t.at(50).invoke("a", "release").at(51).complete("a", OpType.OK)
    assert check_locks(t.rec.ops, key="lock").valid is False


def test_lower_token_on_the_later_holder_is_unsafe() -> None:
    t = Timeline().hold("a", 10, 50, token=5).hold("b", 30, 70, token=4)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is False
    assert "token 4 not above 5" in verdict.evidence[0].message


def test_unreleased_section_runs_to_the_end_of_the_history() -> None:
    t = Timeline()
    t.at(9).invoke("a", "acquire").at(10).complete("a", OpType.OK)
    t.hold("b", 30, 40)
    [a, _b] = critical_sections(t.rec.ops)
    assert a.end_ns == 41
    assert a.released is None
    assert check_locks(t.rec.ops).valid is False


def test_failed_acquire_holds_nothing_and_other_keys_are_ignored() -> None:
    t = Timeline().hold("a", 10, 50)
    t.at(20).invoke("b", "acquire").at(30).complete("b", OpType.FAIL)
    t.now = 35
    other = t.rec.invoke("c", "acquire", {"key": "other"})
    t.rec.ok(other)
    verdict = check_locks(t.rec.ops, key="lock")
    assert verdict.valid is True
    assert verdict.counts["sections"] == 1


def test_no_sections_is_not_applicable() -> None:
    assert check_locks(()).valid is None


def _two_holders(token_a: int | None, token_b: int | None) -> tuple[HistoryRecorder, int]:
    """A acquires with ``token_a``, then B with ``token_b`` while A still holds; A's write
    of its token is invoked last (returned, for its completion)."""
    clock = iter(range(1000))
    rec = HistoryRecorder(clock=lambda: next(clock))
    rec.ok(rec.invoke("A", "acquire", {"key": "k"}), {"key": "k", "token": token_a})
    rec.ok(rec.invoke("B", "acquire", {"key": "k"}), {"key": "k", "token": token_b})
    return rec, rec.invoke("A", "write", {"key": "k", "token": token_a})


def test_a_stale_write_never_answered_at_the_end_of_the_history_is_unsafe() -> None:
    # The last record of a history (a run cut short): A's section ran to that write's own
    # invoke time, so the write counted as after the section and the overlap as fenced.
    rec, _ = _two_holders(1, 2)
    verdict = check_locks(rec.ops)
    assert verdict.valid is False
    assert verdict.counts["fenced_overlaps"] == 0
    rec.observe("B", "noop")  # any later record: it was judged unsafe then only
    assert check_locks(rec.ops).valid is False


def test_a_stale_write_of_unknown_outcome_is_no_rejection() -> None:
    rec, write = _two_holders(1, 2)
    rec.info(write)
    verdict = check_locks(rec.ops)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["overlap"]


def test_an_equal_token_does_not_fence() -> None:
    rec, write = _two_holders(5, 5)
    rec.fail(write)
    verdict = check_locks(rec.ops)
    assert verdict.valid is False
    assert "token 5 not above 5" in verdict.evidence[0].message


def test_a_release_begun_as_the_next_acquire_completes_is_no_overlap() -> None:
    # A's release is invoked at 5, the moment B's acquire completes: A held it until then.
    ops = [
        Op(0, OpType.INVOKE, "A", "acquire", 1, {"key": "k"}),
        Op(1, OpType.OK, "A", "acquire", 2, {"key": "k", "token": None}),
        Op(2, OpType.INVOKE, "B", "acquire", 3, {"key": "k"}),
        Op(3, OpType.INVOKE, "A", "release", 5, {"key": "k"}),
        Op(4, OpType.OK, "B", "acquire", 5, {"key": "k", "token": None}),
        Op(5, OpType.OK, "A", "release", 6, {"key": "k"}),
    ]
    assert check_locks(ops).valid is True


def test_a_failed_release_ends_the_section_all_the_same() -> None:
    # The holder gave the lock up (its release failed: the lock had expired, say); what
    # follows is another holder's own section, not an overlap.
    clock = iter(range(1000))
    rec = HistoryRecorder(clock=lambda: next(clock))
    rec.ok(rec.invoke("A", "acquire", {"key": "k"}), {"key": "k", "token": None})
    rec.fail(rec.invoke("A", "release", {"key": "k"}))
    rec.ok(rec.invoke("B", "acquire", {"key": "k"}), {"key": "k", "token": None})
    rec.ok(rec.invoke("B", "release", {"key": "k"}))
    assert check_locks(rec.ops).valid is True
