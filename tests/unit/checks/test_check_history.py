"""History records: JSON round trip, pairing, the recorder."""

from __future__ import annotations

import errno
import itertools
from pathlib import Path

import pytest

from squall.checks.history import HistoryError, HistoryRecorder, Op, OpType, pair_ops
from squall.store.history_log import HistoryLog, HistoryLogError, read_history


def recorder() -> HistoryRecorder:
    ticks = itertools.count(0, 10)
    return HistoryRecorder(clock=lambda: next(ticks))


def test_recorder_assigns_indices_times_and_merges_values() -> None:
    rec = recorder()
    a = rec.invoke("p1", "debit", {"amount": 5})
    b = rec.invoke("p2", "debit", {"amount": 7})
    done = rec.ok(a, {"version": 1})
    rec.info(b, {"reason": "timeout"})
    assert [op.index for op in rec.ops] == [0, 1, 2, 3]
    assert [op.time_ns for op in rec.ops] == [0, 10, 20, 30]
    assert done.value == {"amount": 5, "version": 1}
    assert done.type is OpType.OK
    assert done.process == "p1"


def test_recorder_refuses_to_complete_a_completion() -> None:
    rec = recorder()
    done = rec.ok(rec.invoke("p", "f"))
    with pytest.raises(HistoryError, match="cannot complete"):
        rec.ok(done)


def test_op_round_trips_through_dict() -> None:
    op = Op(3, OpType.INFO, "w1", "debit", 123, {"amount": 5, "nested": [1, {"a": None}]})
    assert Op.from_dict(op.to_dict()) == op


@pytest.mark.parametrize(
    "bad",
    [
        {"index": "1", "type": "ok", "process": "p", "f": "x", "time_ns": 1},
        {"index": 1, "type": "done", "process": "p", "f": "x", "time_ns": 1},
        {"index": 1, "type": "ok", "process": "p", "f": "x", "time_ns": True},
        {"index": 1, "type": "ok", "process": "p", "f": "x", "time_ns": 1, "value": []},
    ],
)
def test_from_dict_rejects_bad_records(bad: dict[str, object]) -> None:
    with pytest.raises(HistoryError, match="bad operation record"):
        Op.from_dict(bad)


def test_typed_accessors_name_the_op_and_key() -> None:
    op = Op(0, OpType.OK, "p", "debit", 0, {"amount": "5", "flag": True})
    with pytest.raises(HistoryError, match=r"#0 ok debit by p has amount='5'"):
        op.int_value("amount")
    with pytest.raises(HistoryError, match="expected an integer"):
        op.int_value("flag")
    with pytest.raises(HistoryError, match="expected a string"):
        op.str_value("missing")


def test_pairing_matches_per_process_and_marks_missing_completions() -> None:
    rec = recorder()
    a = rec.invoke("p1", "debit")
    b = rec.invoke("p2", "debit")
    rec.observe("s1", "event", {"seq": 1})
    rec.fail(b)
    rec.ok(a)
    c = rec.invoke("p1", "debit")
    pairs = pair_ops(rec.ops, fs={"debit"})
    assert [(p.invoke.index, p.outcome) for p in pairs] == [
        (a.index, OpType.OK),
        (b.index, OpType.FAIL),
        (c.index, OpType.INFO),
    ]
    assert pairs[2].completion is None
    assert pairs[2].end_ns is None


def test_pairing_rejects_overlapping_invokes_of_one_process() -> None:
    rec = recorder()
    rec.invoke("p1", "debit")
    rec.invoke("p1", "debit")
    with pytest.raises(HistoryError, match="distinct process ids"):
        pair_ops(rec.ops)


def test_pairing_rejects_a_lone_completion_unless_filtered_out() -> None:
    rec = recorder()
    rec.observe("s1", "event")
    with pytest.raises(HistoryError, match="completes nothing"):
        pair_ops(rec.ops)
    assert pair_ops(rec.ops, fs={"debit"}) == []


def test_history_log_streams_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryLog(path, buffer_ops=2) as log:
        rec = HistoryRecorder(sink=log.append)
        first = rec.invoke("p", "debit", {"amount": 1})
        assert path.read_text() == ""  # still buffered
        rec.ok(first)
        assert len(path.read_text().splitlines()) == 2  # buffer full: written and flushed
        rec.invoke("p", "debit")
    assert read_history(path) == list(rec.ops)
    with pytest.raises(ValueError, match="closed"):
        log.append(rec.ops[0])


def test_history_log_appends_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    op = Op(0, OpType.OK, "p", "f", 1)
    for _ in range(2):
        with HistoryLog(path) as log:
            log.append(op)
    assert read_history(path) == [op, op]


def test_a_history_log_that_cannot_write_keeps_the_error_and_removes_its_file(
    tmp_path: Path,
) -> None:
    # A full disk: every write to /dev/full fails with ENOSPC. The file here is a link to
    # it, so removing the file removes the link.
    path = tmp_path / "race.history.jsonl"
    path.symlink_to("/dev/full")
    op = Op(0, OpType.OK, "p", "f", 1)
    log = HistoryLog(path, buffer_ops=2)
    for _ in range(5):
        log.append(op)  # no exception: the run goes on
    log.close()
    assert isinstance(log.error, OSError)
    assert log.error.errno == errno.ENOSPC
    assert log.written == 0
    assert not path.is_symlink()
    assert Path("/dev/full").exists()


def test_a_history_log_that_cannot_open_its_file_takes_no_records(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path / "gone" / "race.history.jsonl")
    assert isinstance(log.error, FileNotFoundError)
    log.append(Op(0, OpType.OK, "p", "f", 1))
    log.close()
    assert log.written == 0


def test_read_history_skips_a_torn_tail_but_not_a_bad_middle(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    good = Op(0, OpType.OK, "p", "f", 1)
    with HistoryLog(path) as log:
        log.append(good)
    with path.open("a") as f:
        f.write('{"index": 1, "ty')
    assert read_history(path) == [good]
    with pytest.raises(HistoryLogError, match=":2: not an operation record"):
        read_history(path, tolerate_torn_tail=False)
    path.write_text('{"index": 1}\n' + path.read_text())
    with pytest.raises(HistoryLogError, match=":1: not an operation record"):
        read_history(path)
