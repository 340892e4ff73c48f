"""The submit batcher with scripted senders: how batches form, fallback, cancellation.

Each scripted statement waits on a gate the test opens, so interleavings are exact: no
sleeps, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from squall.target.submit_batch import OK, Element, Outcome, SubmitBatcher

WAIT_S = 5.0


class Statements:
    """Scripted ``SendOne``/``SendMany``: each statement is recorded, then waits for
    ``release()``; outcomes are ``ok`` numbered by arrival, or what ``refuse`` says."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []  # (kind, client ids)
        self.gates: list[asyncio.Event] = []
        self.fail_many: type[Exception] | None = None
        self.fail_one: dict[str, Exception] = {}
        self.refuse: dict[str, str] = {}
        self.short_answer = False
        self.changed = asyncio.Event()
        self.accepted: list[int] = []

    async def _statement(self, kind: str, elements: Sequence[Element]) -> None:
        self.sent.append((kind, [e.client_msg_id for e in elements]))
        gate = asyncio.Event()
        self.gates.append(gate)
        self.changed.set()
        await gate.wait()

    def _outcome(self, element: Element) -> Outcome:
        status = self.refuse.get(element.client_msg_id, OK)
        return Outcome(status, 7 if status == OK else 2)

    async def one(self, user: str, element: Element) -> Outcome:
        await self._statement("one", [element])
        if element.client_msg_id in self.fail_one:
            raise self.fail_one[element.client_msg_id]
        return self._outcome(element)

    async def many(self, user: str, elements: Sequence[Element]) -> list[Outcome]:
        await self._statement("many", elements)
        if self.fail_many is not None:
            raise self.fail_many("the whole statement failed")
        outcomes = [self._outcome(e) for e in elements]
        return outcomes[:-1] if self.short_answer else outcomes

    async def after(self, accepted: int) -> None:
        self.accepted.append(accepted)

    async def wait_sent(self, n: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.sent) < n:
                self.changed.clear()
                await self.changed.wait()

    def release(self) -> None:
        """Let the oldest statement still waiting answer."""
        next(g for g in self.gates if not g.is_set()).set()


def _element(i: int, thread: str = "t") -> Element:
    return Element(thread, f"m{i}", f"r{i}", "hello", f"c{i}")


@pytest.fixture
def statements() -> Statements:
    return Statements()


@pytest.fixture
def batcher(statements: Statements) -> SubmitBatcher:
    return SubmitBatcher(statements.one, statements.many, max_batch=4, after=statements.after)


async def _settled(tasks: list[asyncio.Task[Outcome]]) -> None:
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*tasks, return_exceptions=True)


def _submits(
    batcher: SubmitBatcher, indexes: Sequence[int], user: str = "u"
) -> list[asyncio.Task[Outcome]]:
    """One submit task per index, for ``user``, started in that order."""
    return [asyncio.create_task(batcher.submit(user, _element(i))) for i in indexes]


async def _in_flight(batcher: SubmitBatcher, statements: Statements) -> asyncio.Task[Outcome]:
    """The user's first submit, sent as a statement that waits for ``release()``."""
    (first,) = _submits(batcher, [0])
    await statements.wait_sent(1)
    return first


async def _failing_batch_of_two(
    batcher: SubmitBatcher, statements: Statements
) -> list[asyncio.Task[Outcome]]:
    """A lone submit in flight, then two that go together in a batch, whose statement
    fails as ``statements`` is told to; every statement released. The batch's two tasks,
    settled."""
    first = await _in_flight(batcher, statements)
    rest = _submits(batcher, [1, 2])
    statements.release()
    await statements.wait_sent(2)
    statements.release()
    await _settled([first, *rest])
    return rest


async def test_a_lone_submit_goes_alone_and_waiting_ones_go_together(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    rest = _submits(batcher, range(1, 7))
    await asyncio.sleep(0)
    assert "waiting=6" in repr(batcher)
    statements.release()
    await statements.wait_sent(2)
    statements.release()  # the batch of max_batch = 4
    await statements.wait_sent(3)
    statements.release()  # the last two
    await _settled([first, *rest])
    assert statements.sent == [
        ("one", ["c0"]),
        ("many", ["c1", "c2", "c3", "c4"]),
        ("many", ["c5", "c6"]),
    ]
    assert [t.result() for t in (first, *rest)] == [Outcome(OK, 7)] * 7
    assert statements.accepted == [1, 4, 2]
    assert batcher.counts == {
        "submit_statements_total": 3,
        "submit_batches_total": 2,
        "submit_batched_total": 6,
    }
    assert repr(batcher) == "SubmitBatcher(users=0, waiting=0, max_batch=4)"


async def test_one_waiting_submit_goes_through_send_one(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    (second,) = _submits(batcher, [1])
    statements.release()
    await statements.wait_sent(2)
    statements.release()
    await _settled([first, second])
    assert statements.sent == [("one", ["c0"]), ("one", ["c1"])]


async def test_users_do_not_wait_for_each_other(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    (alice,) = _submits(batcher, [0], user="alice")
    (bob,) = _submits(batcher, [1], user="bob")
    await statements.wait_sent(2)  # both in flight at once
    statements.release()
    statements.release()
    await _settled([alice, bob])
    assert sorted(kind for kind, _ in statements.sent) == ["one", "one"]


async def test_each_caller_gets_its_own_refusal(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    statements.refuse = {"c2": "queue_full", "c3": "insufficient_credits"}
    rest = _submits(batcher, [1, 2, 3])
    statements.release()
    await statements.wait_sent(2)
    statements.release()
    await _settled([first, *rest])
    assert [t.result().status for t in rest] == [OK, "queue_full", "insufficient_credits"]
    assert statements.accepted == [1, 1]


async def test_a_failed_batch_is_retried_one_by_one(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    statements.fail_many = RuntimeError
    statements.fail_one = {"c2": ValueError("a duplicate id")}
    rest = _submits(batcher, [1, 2, 3])
    statements.release()
    for n in (2, 3, 4, 5):
        await statements.wait_sent(n)
        statements.release()
    await _settled([first, *rest])
    assert statements.sent == [
        ("one", ["c0"]),
        ("many", ["c1", "c2", "c3"]),
        ("one", ["c1"]),
        ("one", ["c2"]),
        ("one", ["c3"]),
    ]
    assert rest[0].result() == Outcome(OK, 7)
    with pytest.raises(ValueError, match="a duplicate id"):
        rest[1].result()
    assert rest[2].result() == Outcome(OK, 7)
    assert batcher.counts["submit_batch_fallbacks_total"] == 1
    assert batcher.counts["submit_statements_total"] == 5
    assert statements.accepted == [1, 2]


async def test_a_batch_whose_connection_was_lost_is_not_resent(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    """It may have committed before the connection went: resending could collide with it,
    so each caller gets the error and reads its own run back (``runtime.submit``)."""
    statements.fail_many = asyncpg.ConnectionDoesNotExistError
    rest = await _failing_batch_of_two(batcher, statements)
    for task in rest:
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            task.result()
    assert statements.sent == [("one", ["c0"]), ("many", ["c1", "c2"])]
    assert batcher.counts["submit_batch_fallbacks_total"] == 0
    assert statements.accepted == [1, 0]


async def test_a_batch_answering_too_few_outcomes_fails_its_callers_without_resending(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    statements.short_answer = True
    rest = await _failing_batch_of_two(batcher, statements)
    for task in rest:
        with pytest.raises(RuntimeError, match="a batch of 2 submits answered 1 outcomes"):
            task.result()
    assert len(statements.sent) == 2


async def test_a_caller_cancelled_before_its_batch_is_sent_is_removed(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    rest = _submits(batcher, [1, 2, 3])
    await asyncio.sleep(0)
    rest[1].cancel()
    statements.release()
    await statements.wait_sent(2)
    statements.release()
    await _settled([first, *rest])
    assert statements.sent[1] == ("many", ["c1", "c3"])
    assert rest[1].cancelled()
    assert statements.accepted == [1, 2]


async def test_a_caller_cancelled_after_its_batch_is_sent_is_still_charged_and_counted(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    rest = _submits(batcher, [1, 2])
    statements.release()
    await statements.wait_sent(2)  # the batch is in flight
    rest[0].cancel()
    await asyncio.sleep(0)
    statements.release()
    await _settled([first, *rest])
    assert rest[0].cancelled()
    assert rest[1].result() == Outcome(OK, 7)
    assert statements.accepted == [1, 2]  # its statement ran and counted both


async def test_drain_waits_for_every_waiting_submit(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    tasks = _submits(batcher, range(3))
    await statements.wait_sent(1)
    drained = asyncio.create_task(batcher.drain())
    statements.release()
    await asyncio.sleep(0)
    assert not drained.done()
    await _settled(tasks)
    async with asyncio.timeout(WAIT_S):
        await drained
    await batcher.drain()  # nothing in flight: returns at once


async def test_a_cancelled_line_task_cancels_its_callers(
    statements: Statements, batcher: SubmitBatcher
) -> None:
    first = await _in_flight(batcher, statements)
    (second,) = _submits(batcher, [1])
    await asyncio.sleep(0)
    for task in asyncio.all_tasks():
        if task.get_name() == "submit-u":
            task.cancel()
    await _settled([first, second])
    assert first.cancelled()
    assert second.cancelled()
    assert repr(batcher) == "SubmitBatcher(users=0, waiting=0, max_batch=4)"


async def test_a_failing_after_hook_is_logged_and_the_line_goes_on(
    statements: Statements, caplog: pytest.LogCaptureFixture
) -> None:
    async def after(accepted: int) -> None:
        raise RuntimeError("redis is down")

    batcher = SubmitBatcher(statements.one, statements.many, after=after)
    (task,) = _submits(batcher, [0])
    await statements.wait_sent(1)
    statements.release()
    await _settled([task])
    assert task.result() == Outcome(OK, 7)
    assert "the hook after a submit statement failed" in caplog.text


def test_a_batch_needs_room_for_one() -> None:
    async def never(*args: object) -> list[Outcome]:
        raise AssertionError

    with pytest.raises(ValueError, match="max_batch=0"):
        SubmitBatcher(never, never, max_batch=0)  # type: ignore[arg-type]
