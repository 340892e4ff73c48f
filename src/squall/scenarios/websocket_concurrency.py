"""``websocket_concurrency``: many authenticated sockets chatting at once.

The original description's first test: 75 sockets, ramped up in batches of 25,
each sending 15 messages and waiting for every agent run to complete. Each user
then keeps its socket open until every batch has started (and half an interval
more), so all the sockets are open at once even against a target that answers
faster than the ramp starts them (the ``users >= 50`` capacity floor). Records
connection time, ack / first-event / response times, success and delivery
rates, and sequence-number violations. It speaks through the target's
adapter, so it runs unchanged against any protocol (docs/adapters.md).
"""

from __future__ import annotations

import asyncio

from squall.adapters.chat import open_chat
from squall.engine import Scenario, Session, batches, closed
from squall.scenarios.target import TargetInfo, scaled

NAME = "websocket_concurrency"
USERS = 75
BATCH = 25
MESSAGES = 15
#: Seconds between batches.
INTERVAL_S = 1.0


async def behaviour(session: Session) -> None:
    params = session.params
    started = session.clock()
    async with open_chat(session, planned=int(params["messages"])) as chat:
        thread = f"{session.identity.user_id}-chat"
        for index in range(int(params["messages"])):
            await chat.chat(
                thread,
                f"Message {index} from {session.identity.user_id}: how is my order doing?",
                timeout=float(params["timeout_s"]),
            )
        session.recorder.count("operations", int(params["messages"]))
        await asyncio.sleep(hold_s(session, started))


def hold_s(session: Session, started: float) -> float:
    """How much longer a user that started at ``started`` keeps its socket open: until the
    last batch has started, plus half an interval for it to connect."""
    params = session.params
    interval = float(params["interval_s"])
    own_start = (session.identity.index // int(params["batch"])) * interval
    until = started + float(params["ramp_end_s"]) - own_start + interval / 2
    return max(0.0, until - session.clock())


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
    ramp = batches(scaled(batch, scale), interval=INTERVAL_S)
    return Scenario(
        name=NAME,
        behaviour=f"{__name__}:behaviour",
        workload=closed(users, ramp, iterations=1),
        identities=target.identities(f"{tag}-wsc"),
        params={
            "ws_url": target.ws_url,
            "adapter": target.adapter,
            "messages": messages,
            "timeout_s": timeout_s,
            "batch": ramp.size,
            "interval_s": ramp.interval,
            "ramp_end_s": ramp.offset(users - 1, users),
        },
    )
