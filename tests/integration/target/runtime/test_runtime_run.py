"""One run end to end: events, seq, stored messages, billing, replay."""

from __future__ import annotations

import pytest
from runtime_support import Recorder, StartRuntime

from squall.target.errors import ContentTooLarge, InvalidField, NotFound, QueueFull
from squall.target.ids import ThreadID, UserID

pytestmark = pytest.mark.integration

ALICE = UserID("alice")
BOB = UserID("bob")

RUN_EVENTS = [
    "agent_started",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "agent_thinking",
    "agent_completed",
]


async def test_run_publishes_full_sequence_and_stores_answer(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    runtime = await start_runtime()
    await runtime.set_preferences(ALICE, {"tone": "brief"})
    sub = await runtime.submit(ALICE, ThreadID("t-1"), "explain the seating plan", "c1")
    assert sub.thread_id == "t-1"
    await recorder.wait_completed(1)

    events = recorder.thread("t-1")
    assert [e["type"] for e in events] == RUN_EVENTS
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert {e["run_id"] for e in events} == {sub.run_id}
    assert all(user == ALICE for user, _ in recorder.events)
    started, executing, completed_tool, *_, done = events
    assert started["context"]["history_messages"] == 1
    assert started["context"]["trimmed"] is False
    assert started["context"]["budget_tokens"] == runtime.settings.context_budget_tokens
    assert started["context"]["tokens"] > 0
    assert executing["query"] == "explain or seating or plan"
    assert completed_tool["results"] == 1
    assert done["status"] == "completed"
    assert done["charge"] == 1
    assert done["content"] == "".join(e["text"] for e in recorder.of_type("agent_thinking"))
    assert done["usage"] == {"prompt_tokens": started["context"]["tokens"], "completion_tokens": 8}

    messages = await runtime.messages(ALICE, ThreadID("t-1"))
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "explain the seating plan"),
        ("assistant", done["content"]),
    ]
    assert messages[0]["message_id"] == sub.message_id
    assert messages[0]["client_msg_id"] == "c1"
    account = await runtime.account(ALICE)
    assert account["balance"] == runtime.settings.initial_credits - 1
    assert account["runs_charged"] == 1


async def test_second_run_sees_history_and_continues_seq(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    runtime = await start_runtime()
    thread = ThreadID("t-2")
    await runtime.submit(ALICE, thread, "zebras", "c1")
    await runtime.submit(ALICE, thread, "zebras again", "c2")
    await recorder.wait_completed(2)
    events = recorder.thread(thread)
    assert [e["seq"] for e in events] == list(range(1, 13))
    second_start = events[6]
    assert second_start["type"] == "agent_started"
    assert second_start["context"]["history_messages"] == 3
    assert events[7]["query"] == "zebras or again"
    assert events[8]["results"] == 2  # both user messages; the answers use other words
    await runtime.close(1.0)


async def test_replay_returns_exactly_the_missed_events(
    start_runtime: StartRuntime, recorder: Recorder
) -> None:
    runtime = await start_runtime()
    thread = ThreadID("t-3")
    await runtime.submit(ALICE, thread, "hello", "c1")
    await recorder.wait_completed(1)
    published = recorder.thread(thread)
    assert await runtime.replay(ALICE, thread, 0) == published
    assert await runtime.replay(ALICE, thread, 3) == published[3:]
    assert await runtime.replay(ALICE, thread, 2, limit=2) == published[2:4]
    assert await runtime.replay(ALICE, thread, 6) == []
    assert [event["seq"] for event in published] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(NotFound):
        await runtime.replay(BOB, thread, 0)
    with pytest.raises(NotFound):
        await runtime.messages(BOB, thread)
    with pytest.raises(NotFound):
        await runtime.replay(ALICE, ThreadID("never-used"), 0)
    with pytest.raises(NotFound):
        await runtime.submit(BOB, thread, "mine now?", "b1")


async def test_submit_validation_and_queue_bound(start_runtime: StartRuntime) -> None:
    runtime = await start_runtime(claim_runs=False, max_queued_per_thread=2, max_content_chars=10)
    thread = ThreadID("t-4")
    with pytest.raises(InvalidField, match="thread_id"):
        await runtime.submit(ALICE, ThreadID("bad id!"), "x", "c")
    with pytest.raises(ContentTooLarge, match="11 characters"):
        await runtime.submit(ALICE, thread, "x" * 11, "c")
    await runtime.submit(ALICE, thread, "one", "c1")
    await runtime.submit(ALICE, thread, "two", "c2")
    with pytest.raises(QueueFull, match="2 queued"):
        await runtime.submit(ALICE, thread, "three", "c3")
    await runtime.submit(ALICE, ThreadID("t-5"), "other", "c4")
    account = await runtime.account(ALICE)
    assert account["balance"] == runtime.settings.initial_credits - 3
    stats = await runtime.stats()
    assert stats["runs_queued"] == 3
    assert stats["runs_running"] == 0
