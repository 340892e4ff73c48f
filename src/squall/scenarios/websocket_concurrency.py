"""``websocket_concurrency``: many authenticated sockets chatting at once.

The original description's first test: 75 sockets, ramped up in batches of 25,
each sending 15 messages and waiting for every agent run to complete. Records
connection time, ack / first-event / response times, success and delivery
rates, and sequence-number violations. It speaks through the target's
adapter, so it runs unchanged against any protocol (docs/adapters.md).
"""

from __future__ import annotations

from squall.adapters.chat import open_chat
from squall.engine import Scenario, Session, batches, closed
from squall.scenarios.target import TargetInfo, scaled

NAME = "websocket_concurrency"
USERS = 75
BATCH = 25
MESSAGES = 15


async def behaviour(session: Session) -> None:
    params = session.params
    async with open_chat(session, planned=int(params["messages"])) as chat:
        thread = f"{session.identity.user_id}-chat"
        for index in range(int(params["messages"])):
            await chat.chat(
                thread,
                f"Message {index} from {session.identity.user_id}: how is my order doing?",
                timeout=float(params["timeout_s"]),
            )
        session.recorder.count("operations", int(params["messages"]))


def build(
    target: TargetInfo,
    *,
    scale: float = 1.0,
    tag: str = "run",
    users: int = USERS,
    batch: int = BATCH,
    messages: int = MESSAGES,
    timeout_s: float = 30.0,
) -> Scenario:
    """``users`` sockets (× ``scale``) in batches of ``batch``, ``messages`` each."""
    users = scaled(users, scale)
    return Scenario(
        name=NAME,
        behaviour=f"{__name__}:behaviour",
        workload=closed(users, batches(scaled(batch, scale), interval=1.0), iterations=1),
        identities=target.identities(f"{tag}-wsc"),
        params={
            "ws_url": target.ws_url,
            "adapter": target.adapter,
            "messages": messages,
            "timeout_s": timeout_s,
        },
    )
