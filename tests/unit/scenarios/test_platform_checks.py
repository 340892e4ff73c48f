"""The platform_races judging logic on hand-written histories and rows."""

from __future__ import annotations

import itertools

from squall.checks.history import HistoryRecorder, JsonValue, Op
from squall.scenarios import platform_checks as pc
from squall.scenarios.platform_checks import AccountRow, LogEvent, StoredCharge
from squall.scenarios.platform_races import judge
from squall.suite import SCENARIOS


def run_log(thread: str, run: str, start: int, *, thinking: int = 1) -> list[LogEvent]:
    kinds = ["agent_started", "tool_executing", "tool_completed"]
    kinds += ["agent_thinking"] * thinking + ["agent_completed"]
    return [
        LogEvent(
            thread,
            start + i,
            run,
            kind,
            "completed" if kind == "agent_completed" else None,
            1 if kind == "agent_completed" else None,
        )
        for i, kind in enumerate(kinds)
    ]


class History:
    def __init__(self) -> None:
        ticks = itertools.count()
        self.rec = HistoryRecorder(clock=lambda: next(ticks))

    def sent(self, user: str, thread: str, run: str | None, *, expect: str = "completed") -> Op:
        value: dict[str, JsonValue] = {"user": user, "thread": thread, "expect": expect}
        op = self.rec.invoke(f"{user}/{run}", "send", value)
        if run is None:
            return self.rec.fail(op, {"code": "rate_limited"})
        return self.rec.ok(op, {"run": run})

    def saw(self, socket: str, user: str, events: list[LogEvent]) -> None:
        for e in events:
            value: dict[str, JsonValue] = {
                "thread": e.thread, "run": e.run, "seq": e.seq, "type": e.type, "user": user,
            }  # fmt: skip
            if e.type == "agent_completed":
                value.update({"status": e.status, "charge": e.charge})
            self.rec.observe(socket, "event", value)

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.rec.ops


def test_sequential_runs_do_not_overlap() -> None:
    log = run_log("t", "r1", 1) + run_log("t", "r2", 6) + run_log("u", "r3", 1)
    verdict = pc.check_run_locks(log, {"t": 2, "u": 1})
    assert verdict.valid is True, verdict.summary
    assert verdict.counts["sections"] == 3


def test_no_runs_are_not_applicable_said_once() -> None:
    verdict = pc.check_run_locks([], {})
    assert verdict.valid is None
    assert verdict.summary.startswith("not applicable: ")
    assert "not applicable: not applicable" not in verdict.summary


def test_interleaved_runs_of_one_thread_are_an_overlap_naming_both() -> None:
    one, two = run_log("t", "r1", 1), run_log("t", "r2", 3)
    log = sorted([*one[:2], *[LogEvent("t", e.seq + 5, "r1", e.type, e.status, e.charge)
                              for e in one[2:]], *two], key=lambda e: e.seq)  # fmt: skip
    verdict = pc.check_run_locks(log)
    assert verdict.valid is False
    evidence = verdict.evidence[0]
    assert evidence.kind == "overlap"
    assert {evidence.details["earlier"]["process"], evidence.details["later"]["process"]} == {  # type: ignore[index, call-overload]
        "r1",
        "r2",
    }


def test_an_overlap_names_the_thread_and_the_seqs_each_run_wrote() -> None:
    one, two = run_log("t", "r1", 1), run_log("t", "r2", 3)
    late = [LogEvent("t", e.seq + 5, "r1", e.type, e.status, e.charge) for e in one[2:]]
    log = sorted([*one[:2], *late, *two], key=lambda e: e.seq)
    [evidence] = pc.check_run_locks(log, {"t": 2}).evidence
    assert evidence.details["thread"] == "t"
    assert (evidence.details["earlier_seqs"], evidence.details["later_seqs"]) == ([1, 10], [3, 7])
    assert evidence.message.startswith("thread t: r1 (seq 1-10) and r2 (seq 3-7) wrote")
    assert "3 event(s) of r1 landed after r2 began" in evidence.message
    assert " ms" not in evidence.message  # seq is the clock here, not time


def test_a_completion_followed_by_more_events_of_the_run_is_another_holder() -> None:
    log = [
        *run_log("t", "r1", 1)[:3],
        LogEvent("t", 4, "r1", "agent_completed", "failed", 0),
        LogEvent("t", 5, "r1", "agent_thinking"),
        LogEvent("t", 6, "r1", "agent_completed", "completed", 1),
    ]
    verdict = pc.check_run_locks(log)
    assert verdict.valid is False
    assert verdict.evidence[0].details["later"]["process"] == "r1/finaliser@4"  # type: ignore[index, call-overload]
    h = History()
    h.sent("alice", "t", "r1", expect="any")
    runs = pc.check_runs(h.ops, log)
    assert [e.kind for e in runs.evidence] == ["completed-twice", "events-after-completion"]


def test_a_run_executed_twice_is_named_though_it_completed_once() -> None:
    # Two holders' executions of one run, interleaved, with one agent_completed: the runs
    # checker saw it complete once and passed.
    kinds = ["agent_started", "agent_started", "tool_executing", "tool_executing"]
    kinds += ["agent_thinking", "agent_completed"]
    log = [
        LogEvent("t", seq, "r1", kind, "completed" if kind == "agent_completed" else None)
        for seq, kind in enumerate(kinds, start=1)
    ]
    h = History()
    h.sent("alice", "t", "r1")
    runs = pc.check_runs(h.ops, log)
    assert [e.kind for e in runs.evidence] == ["started-twice"]
    assert "agent_started at seq 1, 2" in runs.evidence[0].message
    single = pc.check_runs(h.ops, run_log("t", "r1", 1))
    assert single.valid is True


def test_events_of_a_run_in_another_thread_than_it_was_sent_to_are_named() -> None:
    h = History()
    h.sent("alice", "t1", "r1")
    log = run_log("t1", "r1", 1)[:3] + run_log("t2", "r1", 1)[3:]
    verdict = pc.check_runs(h.ops, log)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["wrong-thread", "never-completed"]
    evidence = verdict.evidence[0]
    assert (evidence.details["run"], evidence.details["thread"]) == ("r1", "t1")
    assert "t2 seq 4 agent_thinking, t2 seq 5 agent_completed" in evidence.message
    # All of it in another thread of the same user: no other checker sees it.
    assert [e.kind for e in pc.check_runs(h.ops, run_log("t2", "r1", 1)).evidence] == [
        "wrong-thread",
        "never-completed",
    ]


def test_fence_behind_the_holders_is_named() -> None:
    log = run_log("t", "r1", 1) + run_log("t", "r2", 6)
    verdict = pc.check_run_locks(log, {"t": 1})
    assert [e.kind for e in verdict.evidence] == ["fence-behind"]


def test_runs_never_completed_or_failed_unexpectedly_are_named() -> None:
    h = History()
    h.sent("alice", "t", "r1")
    h.sent("alice", "t", "r2")
    h.sent("alice", "t", None)  # rejected: no run, not judged
    failed = [*run_log("t", "r1", 1)[:-1], LogEvent("t", 5, "r1", "agent_completed", "failed", 0)]
    verdict = pc.check_runs(h.ops, failed)
    assert sorted(e.kind for e in verdict.evidence) == ["never-completed", "not-completed"]
    assert verdict.counts["acked"] == 2


def test_only_a_run_lost_with_its_worker_may_end_failed() -> None:
    h = History()
    h.sent("alice", "t", "r1")
    h.sent("alice", "u", "r2")
    kill = h.rec.invoke("harness/worker", "crash", {})
    h.rec.ok(kill, {"how": "pid 42", "lost_runs": ["r1"]})
    ended_failed = [
        *run_log("t", "r1", 1)[:-1],
        LogEvent("t", 5, "r1", "agent_completed", "failed", 0),
        *run_log("u", "r2", 1)[:-1],
        LogEvent("u", 5, "r2", "agent_completed", "failed", 0),
    ]
    assert pc.lost_runs(h.ops) == {"r1"}
    verdict = pc.check_runs(h.ops, ended_failed)
    assert [(e.kind, e.details["run"]) for e in verdict.evidence] == [("not-completed", "r2")]
    lost_only = pc.check_runs(h.ops, ended_failed[:5])
    assert lost_only.valid is False  # r2 never completed
    completed_r2 = ended_failed[:5] + run_log("u", "r2", 1)
    fine = pc.check_runs(h.ops, completed_r2)
    assert fine.valid is True, fine.summary
    assert (
        fine.summary
        == "2 acknowledged runs each completed once (1 lost with their worker, ended failed)"
    )


def test_delivery_names_the_socket_group_and_missed_seqs() -> None:
    h = History()
    log = run_log("t", "r1", 1)
    h.saw("a", "alice", log)
    h.saw("b", "alice", log[:2])
    h.saw("c1", "alice", log[:3])
    h.saw("c2", "alice", log[3:])
    verdict = pc.check_delivery(h.ops, log, {"t": [{"a"}, {"b"}, {"c1", "c2"}]})
    assert verdict.valid is False
    assert len(verdict.evidence) == 1
    assert verdict.evidence[0].details["sockets"] == ["b"]
    assert verdict.evidence[0].details["missed"] == [3, 4, 5]


def test_events_from_history_flags_one_seq_with_two_events() -> None:
    h = History()
    h.saw("a", "alice", run_log("t", "r1", 1))
    h.saw("b", "alice", run_log("t", "r2", 1)[:1])
    events, divergent = pc.events_from_history(h.ops)
    assert len(events) == 5
    assert [e.kind for e in divergent] == ["divergent-seq"]


def test_received_events_are_held_against_the_stored_log() -> None:
    stored = run_log("t", "r1", 1) + run_log("t", "r2", 6)
    h = History()
    h.saw("a", "alice", stored)
    assert pc.against_stored(h.ops, stored) == []
    # Every socket got a superseded writer's seq 4, which the log holds as r1's
    # thinking; and seq 7, which it does not hold at all.
    stale = [LogEvent("t", 4, "r0", "agent_thinking"), LogEvent("t", 7, "r0", "agent_thinking")]
    for socket in ("b", "c"):
        h.saw(socket, "alice", stale)
    log = [e for e in stored if e.seq != 7]
    found = pc.against_stored(h.ops, log)
    assert [(e.kind, e.details["socket"], e.details["seq"]) for e in found] == [
        ("unstored-event", "a", 7),
        ("divergent-seq", "b", 4),
    ]
    assert "the platform stored agent_thinking of run r1" in found[1].message
    # Seqs past either end of the stored log may be pruned or newer: not judged.
    assert pc.against_stored(h.ops, [e for e in stored if 4 <= e.seq <= 5]) == [found[1]]


def logins(closes: dict[str, int | None], sessions: dict[str, int]) -> tuple[Op, ...]:
    rec = HistoryRecorder(clock=itertools.count().__next__)
    for socket, session in sessions.items():
        rec.ok(rec.invoke(socket, "connect", {"user": "u"}), {"session": session})
    for socket, code in closes.items():
        rec.observe(socket, "closed", {"code": code, "by": "server"})
    for socket in sessions:
        rec.observe(socket, "closed", {"code": 1000, "by": "client"})
    return rec.ops


def test_single_session_keeps_exactly_the_newest_socket() -> None:
    ok = pc.check_single_session(logins({"s1": 4409, "s2": 4409}, {"s1": 1, "s2": 2, "s3": 3}))
    assert ok.valid is True
    assert ok.counts["replaced"] == 2
    two = pc.check_single_session(logins({"s1": 4409}, {"s1": 1, "s2": 2, "s3": 3}))
    assert [e.kind for e in two.evidence] == ["not-one-session"]
    wrong = pc.check_single_session(logins({"s1": 1000, "s3": 4409}, {"s1": 1, "s2": 2, "s3": 3}))
    assert sorted(e.kind for e in wrong.evidence) == ["wrong-close-code", "wrong-survivor"]


def test_ledger_api_names_lost_debits_per_user() -> None:
    h = History()
    log = run_log("t", "r1", 1) + run_log("t", "r2", 6)
    h.sent("alice", "t", "r1")
    h.sent("alice", "t", "r2")
    ok = pc.check_ledger_api(h.ops, log, {"alice": AccountRow("alice", 998, 1000)}, run_cost=1)
    assert ok.valid is True
    lost = pc.check_ledger_api(h.ops, log, {"alice": AccountRow("alice", 999, 1000)}, run_cost=1)
    assert [e.kind for e in lost.evidence] == ["balance-too-high"]
    assert lost.evidence[0].details["user"] == "alice"


def test_ledger_db_checks_balance_rows_and_reported_charges() -> None:
    h = History()
    log = run_log("t", "r1", 1) + run_log("t", "r2", 6)
    h.sent("alice", "t", "r1")
    h.sent("alice", "t", "r2")
    rows = [StoredCharge("r1", "alice", 1, False), StoredCharge("r2", "alice", 1, True)]
    verdict = pc.check_ledger_db(h.ops, log, [AccountRow("alice", 999, 1000)], rows)
    assert [e.kind for e in verdict.evidence] == ["charge-mismatch"]
    assert verdict.counts["rows"] == 2  # each ledger row once (it read 4)
    assert verdict.evidence[0].details["run"] == "r2"
    lost = pc.check_ledger_db(h.ops, log, [AccountRow("alice", 1000, 1000)], rows[:1])
    assert sorted(e.kind for e in lost.evidence) == ["balance-too-high", "uncharged-run"]


def test_race_tally_counts_serialised_runs_as_prevented() -> None:
    log = run_log("t", "r1", 1) + run_log("t", "r2", 6) + run_log("t", "r3", 11)
    assert pc.serialised_runs(log) == 2
    locks = pc.check_run_locks(log)
    tally = pc.race_tally([locks], serialised=2, sessions=None)
    assert (tally.detected, tally.prevented, tally.violations) == (2, 2, 0)


def test_the_suite_knows_the_scenario() -> None:
    assert "platform_races" in SCENARIOS


def test_ledger_api_counts_and_names_the_accounts_it_could_not_read() -> None:
    h = History()
    log = run_log("t", "r1", 1) + run_log("u", "r2", 1)
    h.sent("alice", "t", "r1")
    h.sent("bob", "u", "r2")
    for user in ("alice", "bob", "carol"):
        h.rec.ok(h.rec.invoke(f"{user}/http", "account", {"user": user}), {"status": 500})
    verdict = pc.check_ledger_api(h.ops, log, {"alice": AccountRow("alice", 999, 1000)}, run_cost=1)
    assert verdict.valid is True
    assert verdict.counts["accounts_unread"] == 2
    assert "2 account(s) could not be read and were not checked (bob, carol)" in verdict.summary
    everyone = {
        u: AccountRow(u, 999 if u != "carol" else 1000, 1000) for u in ("alice", "bob", "carol")
    }
    read = pc.check_ledger_api(h.ops, log, everyone, run_cost=1)
    assert "accounts_unread" not in read.counts
    assert "could not be read" not in read.summary


def test_delivery_without_a_known_event_judged_nothing() -> None:
    h = History()
    h.sent("alice", "t", None)  # refused: no run, no event
    verdict = pc.check_delivery(h.ops, [], {"t": [{"a"}, {"b"}]})
    assert verdict.valid is None
    assert verdict.summary == "not applicable: no event of the 1 watched thread(s) is known"
    # A thread with events beside one without: only the first is judged.
    log = run_log("t", "r1", 1)
    h.saw("a", "alice", log)
    verdict = pc.check_delivery(h.ops, log, {"t": [{"a"}], "u": [{"b"}]})
    assert (verdict.valid, verdict.counts["streams"]) == (True, 1)


def test_a_history_with_no_event_reads_ordering_not_applicable() -> None:
    h = History()
    h.sent("alice", "t", None)
    h.sent("bob", "u", None)
    verdicts, _ = judge(
        h.ops,
        thread_owner={"t": "alice", "u": "bob"},
        socket_user={"alice/None": "alice", "bob/None": "bob"},
        viewers={"t": [{"alice/None"}], "u": [{"bob/None"}]},
        accounts={},
        fairness_users=(),
    )
    by_name = {v.checker: v for v in verdicts}
    assert by_name["ordering"].valid is None, by_name["ordering"].summary
    assert by_name["delivery"].valid is None, by_name["delivery"].summary


def _event(i: int, socket: str, seq: int, kind: str, run: str = "r1") -> Op:
    from squall.checks.history import OpType

    value: dict[str, JsonValue] = {"thread": "t", "run": run, "seq": seq, "type": kind}
    return Op(i, OpType.OK, socket, "event", i, value)


def test_one_missed_event_of_a_viewed_thread_is_named() -> None:
    log = [LogEvent("t", seq, "r1", "x") for seq in (1, 2, 3)]
    ops = [_event(0, "s1", 1, "x"), _event(1, "s1", 3, "x")]
    verdict = pc.check_delivery(ops, log, {"t": [{"s1"}]})
    assert verdict.valid is False
    assert [e.message for e in verdict.evidence] == [
        "socket(s) s1 never received 1 of 3 events of thread t (seq 2)"
    ]


def test_two_logins_both_closed_leave_no_session_and_are_named() -> None:
    from squall.checks.history import OpType

    ops = [
        Op(0, OpType.INVOKE, "s1", "connect", 0, {"user": "u"}),
        Op(1, OpType.INVOKE, "s2", "connect", 1, {"user": "u"}),
        Op(2, OpType.OK, "s1", "connect", 2, {"session": 1}),
        Op(3, OpType.OK, "s2", "connect", 3, {"session": 2}),
        Op(4, OpType.OK, "s1", "closed", 4, {"code": 4409, "by": "server"}),
        Op(5, OpType.OK, "s2", "closed", 5, {"code": 4409, "by": "server"}),
    ]
    verdict = pc.check_single_session(ops)
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["not-one-session"]


def test_an_event_of_another_type_at_a_stored_seq_diverges() -> None:
    stored = [
        LogEvent("t", 1, "r1", "agent_started"),
        LogEvent("t", 2, "r1", "agent_completed", "completed", 5),
    ]
    ops = [_event(0, "s1", 1, "agent_started"), _event(1, "s1", 2, "token")]
    assert "divergent-seq" in [e.kind for e in pc.against_stored(ops, stored)]
    # Two sockets told different things at one seq, judged without the database.
    both = [*ops, _event(2, "s2", 2, "agent_completed")]
    assert "divergent-seq" in [e.kind for e in pc.events_from_history(both)[1]]


def test_an_event_at_a_seq_the_database_skipped_is_unstored() -> None:
    stored = [LogEvent("t", seq, "r1", "x") for seq in (1, 2, 4)]
    ops = [_event(0, "s1", 3, "x", run="rX")]
    assert "unstored-event" in [e.kind for e in pc.against_stored(ops, stored)]


def test_runs_of_a_thread_without_a_fence_are_named() -> None:
    log = [
        LogEvent("t", 1, "r1", "agent_started"),
        LogEvent("t", 2, "r1", "agent_completed", "completed"),
        LogEvent("t", 3, "r2", "agent_started"),
        LogEvent("t", 4, "r2", "agent_completed", "completed"),
    ]
    verdict = pc.check_run_locks(log, fences={})
    assert verdict.valid is False
    assert "fence-behind" in [e.kind for e in verdict.evidence]


def test_a_send_expects_its_run_completed_unless_told_otherwise() -> None:
    from squall.checks.history import OpType

    send = {"user": "u", "thread": "t", "socket": "s1", "client_msg_id": "m1"}
    ops = [
        Op(0, OpType.INVOKE, "s1/m1", "send", 0, send),
        Op(1, OpType.OK, "s1/m1", "send", 1, {"run": "r1"}),
    ]
    log = [
        LogEvent("t", 1, "r1", "agent_started"),
        LogEvent("t", 2, "r1", "agent_completed", "failed"),
    ]
    verdict = pc.check_runs(ops, log)
    assert verdict.valid is False
    assert "not-completed" in [e.kind for e in verdict.evidence]


def test_a_charge_reported_below_its_ledger_row_is_a_mismatch() -> None:
    from squall.checks.history import OpType

    ops = [
        Op(0, OpType.INVOKE, "s1/m1", "send", 0, {"user": "u", "thread": "t"}),
        Op(1, OpType.OK, "s1/m1", "send", 1, {"run": "r1"}),
    ]
    log = [
        LogEvent("t", 1, "r1", "agent_started"),
        LogEvent("t", 2, "r1", "agent_completed", "completed", 3),
    ]
    verdict = pc.check_ledger_db(
        ops, log, [AccountRow("u", 95, 100)], [StoredCharge("r1", "u", 5, False)]
    )
    assert verdict.valid is False
    assert "charge-mismatch" in [e.kind for e in verdict.evidence]


def test_unfenced_lock_overlaps_count_as_unprevented_races() -> None:
    from squall.checks.verdict import Verdict

    locks = Verdict("locks", False, "x", {"overlaps": 2, "fenced_overlaps": 0, "violations": 2})
    tally = pc.race_tally([locks], serialised=0, sessions=None)
    assert tally.unprevented == 2


def test_events_after_a_dropped_connection_name_the_drop_not_delivery() -> None:
    # A network fault reset a socket after seq 2: delivery said "never received 2 of 4
    # events", blaming the platform for what the connection lost.
    from squall.checks.history import OpType

    log = [LogEvent("t", seq, "r1", "x") for seq in (1, 2, 3, 4)]
    dropped_at_2 = [
        _event(0, "s1", 1, "x"),
        _event(1, "s1", 2, "x"),
        Op(2, OpType.OK, "s1", "closed", 2, {"code": 1006, "by": "server"}),
    ]
    verdict = pc.check_delivery(dropped_at_2, log, {"t": [{"s1"}]})
    assert verdict.valid is False
    assert [e.kind for e in verdict.evidence] == ["dropped-connection"]
    assert verdict.evidence[0].message.startswith(
        "socket(s) s1 lost the connection without a close frame (code 1006) after seq 2"
    )
    # A hole before the drop is still delivery's.
    holed = [dropped_at_2[0], _event(1, "s1", 3, "x"), dropped_at_2[2]]
    kinds = [e.kind for e in pc.check_delivery(holed, log, {"t": [{"s1"}]}).evidence]
    assert kinds == ["missed-events"]
