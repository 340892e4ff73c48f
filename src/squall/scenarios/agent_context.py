"""``agent_context``: concurrent agent runs over large contexts.

25 users at once, each first building a context of 2,000+ characters from the
three sources the platform draws on — conversation history (earlier messages
of the thread), user preferences (``PUT /v1/accounts/me/preferences``) and
system state (added by the platform) — then timing one more run over it. The
preferences are the reference platform's own API: with another protocol's adapter
the context is built from the history alone.
Context processing time is the platform's time from the message to
``tool_completed`` (context built, history searched); response generation is
``tool_completed`` to ``agent_completed``; the context size is read from
``agent_started``.
"""

from __future__ import annotations

import httpx

from squall.adapters.chat import open_chat
from squall.adapters.reference import ReferenceAdapter, phase_times
from squall.engine import Scenario, Session, closed
from squall.scenarios.target import TargetInfo, scaled

NAME = "agent_context"
USERS = 25
#: Messages that build the history before the measured run.
HISTORY_MESSAGES = 3
MIN_CONTEXT_CHARS = 2_000

_TOPICS = ("latency budgets", "database failover", "websocket reconnects", "credit billing")


def _history_message(user: str, index: int) -> str:
    topic = _TOPICS[index % len(_TOPICS)]
    return (
        f"{user} asks about {topic} (part {index}). "
        + "We run a real-time service with many concurrent users and need details. " * 6
    )


async def _set_preferences(session: Session) -> None:
    """The user's preferences, through the reference platform's REST API; a failure is
    counted and the runs go ahead (their context then falls short, which is checked)."""
    preferences = {
        "language": "en",
        "tone": "concise",
        "expertise": "senior backend engineer",
        "notes": "Prefers answers with concrete numbers and trade-offs. " * 8,
    }
    url = f"{session.params['http_url']}/v1/accounts/me/preferences"
    try:
        response = await session.http.put(url, json=preferences)
    except httpx.HTTPError as exc:
        session.recorder.error("http", f"preferences: PUT {url}: {type(exc).__name__}: {exc}")
        return
    if not response.is_success:
        session.recorder.error("http", f"preferences: HTTP {response.status_code}")


async def behaviour(session: Session) -> None:
    params = session.params
    user = session.identity.user_id
    async with open_chat(session, planned=HISTORY_MESSAGES + 1) as chat:
        if isinstance(chat.adapter, ReferenceAdapter):  # the reference platform or a variant
            await _set_preferences(session)
        thread = f"{user}-context"
        for index in range(HISTORY_MESSAGES):
            await chat.chat(thread, _history_message(user, index), timeout=params["timeout_s"])
        observation = await chat.chat(
            thread,
            "Summarise everything above about database failover and latency budgets.",
            timeout=params["timeout_s"],
        )
        recorder = session.recorder
        recorder.count("operations", HISTORY_MESSAGES + 1)
        if observation.context_chars is not None:
            recorder.gauge("context_chars_measured", float(observation.context_chars))
            recorder.rate("context_large_enough", observation.context_chars >= MIN_CONTEXT_CHARS)
        timings = phase_times(observation)
        if timings is not None:
            processing, generation = timings
            recorder.trend("context_processing_time", processing)
            recorder.trend("response_generation_time", generation)


def build(
    target: TargetInfo,
    *,
    scale: float = 1.0,
    tag: str = "run",
    users: int = USERS,
    timeout_s: float = 60.0,
) -> Scenario:
    """``users`` (× ``scale``) concurrent runs over large contexts."""
    users = scaled(users, scale)
    return Scenario(
        name=NAME,
        behaviour=f"{__name__}:behaviour",
        workload=closed(users, iterations=1),
        identities=target.identities(f"{tag}-ctx"),
        params={
            "ws_url": target.ws_url,
            "http_url": target.http_url,
            "adapter": target.adapter,
            "timeout_s": timeout_s,
        },
    )
