"""``long_conversation``: long chats whose context keeps growing.

20 conversations at once, 50 messages each. Every message adds to the
thread's history, so the context the platform builds grows until it reaches
the platform's token budget and is trimmed; the scenario checks the reported
context never exceeds the budget (``context_within_budget`` rate) while the
resource monitor samples the platform's memory for growth and leak slope.
"""

from __future__ import annotations

from squall.adapters.chat import open_chat
from squall.engine import Scenario, Session, closed
from squall.scenarios.target import TargetInfo, scaled

NAME = "long_conversation"
USERS = 20
MESSAGES = 50


async def behaviour(session: Session) -> None:
    params = session.params
    budget = int(params["context_budget_tokens"])
    recorder = session.recorder
    async with open_chat(session, planned=int(params["messages"])) as chat:
        thread = f"{session.identity.user_id}-long"
        largest = 0
        for index in range(int(params["messages"])):
            observation = await chat.chat(
                thread,
                f"Turn {index}: tell me more about step {index} of the rollout plan, "
                "including risks, owners and the rollback procedure.",
                timeout=float(params["timeout_s"]),
            )
            if observation.context_tokens is not None:
                largest = max(largest, observation.context_tokens)
                recorder.rate("context_within_budget", observation.context_tokens <= budget)
        recorder.gauge("context_tokens_peak", float(largest))
        recorder.count("operations", int(params["messages"]))


def build(
    target: TargetInfo,
    *,
    scale: float = 1.0,
    tag: str = "run",
    users: int = USERS,
    messages: int = MESSAGES,
    timeout_s: float = 30.0,
    context_budget_tokens: int = 2_048,
) -> Scenario:
    """``users`` (× ``scale``) conversations of ``messages`` messages each."""
    return Scenario(
        name=NAME,
        behaviour=f"{__name__}:behaviour",
        workload=closed(scaled(users, scale), iterations=1),
        identities=target.identities(f"{tag}-long"),
        params={
            "ws_url": target.ws_url,
            "adapter": target.adapter,
            "messages": messages,
            "timeout_s": timeout_s,
            "context_budget_tokens": context_budget_tokens,
        },
    )
