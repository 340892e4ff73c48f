"""The adapter interface's pure parts: trackers, capabilities, violations and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.adapters import registry
from squall.adapters.base import Capabilities, violations
from squall.adapters.echo import MAX_EXPIRED, MAX_FOREIGN, EchoAdapter, EchoTracker
from squall.adapters.reference import ReferenceAdapter, fully_delivered
from squall.adapters.tracker import RunObservation, RunStatus, RunTracker, ServerError
from squall.engine.identity import Identity, UserID

NOTHING = Capabilities(
    authentication=False,
    acknowledgements=False,
    progress_events=False,
    ordering=False,
    isolation=False,
)


def test_echo_tracker_completes_the_message_whose_id_comes_back() -> None:
    tracker = EchoTracker()
    first = tracker.sent("a", "t", 1.0)
    second = tracker.sent("b", "t", 1.5)
    assert tracker.feed({"type": "chat", "client_msg_id": "b"}, 2.0) is second
    assert (second.status, second.response_time, second.ack_time) == (
        RunStatus.COMPLETED,
        0.5,
        None,
    )
    assert not first.done
    assert tracker.feed({"client_msg_id": "b"}, 2.5) is None  # a duplicate echo is foreign
    assert tracker.foreign_events == [{"client_msg_id": "b"}]
    tracker.expire(first, 40.0)
    assert first.status is RunStatus.TIMED_OUT
    assert tracker.feed({"client_msg_id": "a"}, 41.0) is None
    # The late echo answers the message given up on: it is not foreign; a second one is.
    assert tracker.foreign_events == [{"client_msg_id": "b"}]
    assert tracker.feed({"client_msg_id": "a"}, 42.0) is None
    assert tracker.foreign_events == [{"client_msg_id": "b"}, {"client_msg_id": "a"}]
    assert tracker.gaps == []


def test_echo_adapter_frames_and_no_credentials() -> None:
    adapter = EchoAdapter()
    identity = Identity(UserID("u-1"), "secret-token", 1)
    assert adapter.headers(identity) == {}
    assert adapter.message("t", "hi", "m1") == {
        "type": "chat",
        "thread_id": "t",
        "content": "hi",
        "client_msg_id": "m1",
    }
    assert isinstance(adapter.tracker(), EchoTracker)


def test_reference_adapter_sends_bearer_token_and_user_message() -> None:
    adapter = ReferenceAdapter()
    identity = Identity(UserID("u-1"), "tok", 1)
    assert adapter.headers(identity) == {"Authorization": "Bearer tok"}
    assert adapter.message("t", "hi", "m1")["type"] == "user_message"
    assert isinstance(adapter.tracker(), RunTracker)
    caps = adapter.capabilities
    assert all((caps.ordering, caps.isolation, caps.progress_events, caps.acknowledgements))
    assert caps.not_applicable("squall") == []


def test_not_applicable_notes_name_each_missing_notion() -> None:
    notes = NOTHING.not_applicable("echo")
    assert [n.split(":")[0] for n in notes] == ["ordering", "isolation", "delivery", "ack_time"]
    assert all("'echo'" in n for n in notes)


def test_violations_absent_when_no_check_ran() -> None:
    everything = ReferenceAdapter.capabilities
    assert violations(NOTHING, {"seq_gaps": 3}) is None
    assert violations(everything, {"messages_sent": 10}) is None
    assert violations(everything, {"seq_gaps": 0, "isolation_leaks": 0}) == 0
    assert violations(everything, {"seq_gaps": 2, "isolation_leaks": 1}) == 3
    ordering_only = Capabilities(True, True, True, ordering=True, isolation=False)
    assert violations(ordering_only, {"seq_gaps": 2, "isolation_leaks": 1}) == 2


def test_registry_names_paths_and_errors() -> None:
    assert registry.names()[:2] == ("squall", "echo")
    assert isinstance(registry.load("echo"), EchoAdapter)
    assert isinstance(registry.load("squall.adapters.reference:ReferenceAdapter"), ReferenceAdapter)
    with pytest.raises(registry.UnknownAdapter, match=r"unknown adapter 'ech'.*'echo'"):
        registry.load("ech")
    with pytest.raises(registry.UnknownAdapter, match=r"cannot import adapter '[^']*:Missing': "):
        registry.load("squall.adapters.echo:Missing")
    with pytest.raises(registry.UnknownAdapter, match="not a subclass"):
        registry.load("squall.adapters.echo:EchoTracker")


def test_register_refuses_a_taken_name_unless_told_to_replace_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_ADAPTERS", dict(registry._ADAPTERS))
    with pytest.raises(ValueError, match=r"'echo' is already registered for .*replace=True"):
        registry.register("echo", "mypkg.proto:Proto")
    assert registry.path_of("echo") == "squall.adapters.echo:EchoAdapter"
    registry.register("echo", "squall.adapters.echo:EchoAdapter")  # the same path: a no-op
    registry.register("echo", "squall.adapters.reference:ReferenceAdapter", replace=True)
    assert isinstance(registry.load("echo"), ReferenceAdapter)
    registry.register("mine", "squall.adapters.echo:EchoAdapter")
    assert registry.names()[-1] == "mine"
    with pytest.raises(ValueError, match=r"'mypkg\.proto' .* is not 'package\.module:Class'"):
        registry.register("other", "mypkg.proto")


def test_adapters_recognise_their_own_servers_frames_only() -> None:
    reference, echo = ReferenceAdapter(), EchoAdapter()
    for kind in ("hello", "ack", "agent_started", "agent_completed", "resume_done", "pong"):
        assert reference.recognises({"type": kind})
    assert reference.recognises({"type": "error", "code": "queue_full"})
    assert not reference.recognises({"type": "user_message", "thread_id": "t"})  # an echo
    assert not reference.recognises({"kind": "ack"})
    assert not reference.recognises({"type": ["ack"]})  # raised: unhashable type: 'list'
    assert echo.recognises(echo.message("t", "hi", "m1"))
    assert not echo.recognises({"type": "hello", "worker": 1})


def test_only_the_reference_adapter_names_closes_that_refuse_a_socket() -> None:
    unread = [ServerError(code="too_many_sockets", message="")]
    assert ReferenceAdapter().refusal(1008, "", unread) == "too_many_sockets"
    # The default: no close is a refusal, whatever came before it.
    assert EchoAdapter().refusal(1008, "too_many_sockets", unread) is None


BROKEN_ADAPTERS = {
    # module source, what the error says
    "syntax_error": ("class Proto(\n", "raised SyntaxError: '(' was never closed"),
    "raises_on_import": (
        "raise RuntimeError('PROTO_KEY is not set')\n",
        "raised RuntimeError: PROTO_KEY is not set (at raises_on_import.py:1 in <module>)",
    ),
    "abstract": (
        "from squall.adapters.base import Adapter\nclass Proto(Adapter):\n    pass\n",
        "cannot be created: TypeError: Can't instantiate abstract class Proto",
    ),
    "raises_when_created": (
        "from squall.adapters.echo import EchoAdapter\n"
        "class Proto(EchoAdapter):\n"
        "    def __init__(self):\n"
        "        raise ValueError('needs a key')\n",
        "cannot be created: ValueError: needs a key (at raises_when_created.py:4 in __init__)",
    ),
    # Without capabilities (or with a dict there) the run failed with a traceback.
    "no_capabilities": (
        "from squall.adapters.echo import EchoAdapter\n"
        "class Proto(EchoAdapter):\n"
        "    capabilities = None\n",
        "has capabilities=None; set the class attribute capabilities = Capabilities(...)",
    ),
    "dict_capabilities": (
        "from squall.adapters.echo import EchoAdapter\n"
        "class Proto(EchoAdapter):\n"
        "    capabilities = {'ordering': True}\n",
        "has capabilities={'ordering': True}; set the class attribute",
    ),
    "no_name": (
        "from squall.adapters.echo import EchoAdapter\n"
        "class Proto(EchoAdapter):\n"
        "    name = None\n",
        "has no name; set the class attribute name = '...'",
    ),
}


@pytest.mark.parametrize("module", sorted(BROKEN_ADAPTERS))
def test_a_broken_adapter_module_is_an_unknown_adapter_naming_the_error(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, message = BROKEN_ADAPTERS[module]
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(registry.UnknownAdapter) as raised:
        registry.load(f"{module}:Proto")
    assert message in str(raised.value)
    assert str(raised.value).startswith(
        (f"cannot import adapter '{module}:Proto'", f"adapter '{module}:Proto'")
    )
    assert str(raised.value).count(f"{module}:Proto") == 1  # an import path is its own name


def test_a_registered_name_is_followed_by_its_path_in_an_adapter_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._ADAPTERS, "not-an-adapter", "squall.adapters.echo:EchoTracker")
    with pytest.raises(registry.UnknownAdapter) as raised:
        registry.load("not-an-adapter")
    assert str(raised.value).startswith(
        "adapter 'not-an-adapter' (squall.adapters.echo:EchoTracker) is not a subclass"
    )


def test_echo_tracker_remembers_only_the_newest_timed_out_messages() -> None:
    # A target that never answers gave the tracker one entry per timeout, for good.
    tracker = EchoTracker()
    for index in range(MAX_EXPIRED + 5):
        tracker.expire(tracker.sent(f"m{index}", "t", float(index)), float(index) + 10)
    assert tracker.feed({"client_msg_id": f"m{MAX_EXPIRED + 4}"}, 1e6) is None
    assert tracker.foreign_events == []  # a late echo of a recent one is no stranger
    assert tracker.feed({"client_msg_id": "m0"}, 1e6) is None
    assert tracker.foreign_events == [{"client_msg_id": "m0"}]  # forgotten: foreign


def test_echo_tracker_keeps_the_newest_foreign_frames_and_counts_the_ones_it_dropped() -> None:
    # A target answering with wrong ids gave the tracker one entry per answer, for good.
    tracker = EchoTracker()
    answered = tracker.sent("mine", "t", 0.0)
    for index in range(MAX_FOREIGN + 7):
        assert tracker.feed({"client_msg_id": f"other-{index}"}, float(index)) is None
    assert len(tracker.foreign_events) == MAX_FOREIGN
    assert tracker.foreign_dropped == 7
    assert tracker.foreign_events[0] == {"client_msg_id": "other-7"}
    assert tracker.foreign_events[-1] == {"client_msg_id": f"other-{MAX_FOREIGN + 6}"}
    assert f"foreign={MAX_FOREIGN + 7}" in repr(tracker)
    # Matching still works beside a full list.
    assert tracker.feed({"client_msg_id": "mine"}, 1e6) is answered
    assert tracker.foreign_dropped == 7


def test_a_run_is_delivered_only_when_every_event_carried_its_seq() -> None:
    observation = RunObservation(client_msg_id="c", thread_id="t", sent_at=0.0)
    observation.events = [
        "agent_started",
        "tool_executing",
        "tool_completed",
        "agent_thinking",
        "agent_completed",
    ]
    observation.seqs = [1, 2, 3, 4, 5]
    assert fully_delivered(observation)
    observation.seqs = [1, 2, 3, 4]  # one event without an integer seq
    assert not fully_delivered(observation)
    observation.seqs = []  # none: an empty list was "consecutive"
    assert not fully_delivered(observation)
