"""75 authenticated sockets, 15 messages each, in batches of 25 (docs/pytest.md)."""

import pytest

from squall.adapters.chat import open_chat
from squall.engine import Session, batches

pytestmark = [pytest.mark.integration, pytest.mark.real_services, pytest.mark.high_load]

MESSAGES = 15


async def chat_15_messages(session: Session) -> None:
    async with open_chat(session) as chat:
        thread = f"{session.identity.user_id}-chat"
        for index in range(MESSAGES):
            await chat.chat(thread, f"Message {index}: how is my order doing?")


async def test_75_sockets_15_messages_each(squall, thresholds):
    users = squall.scaled(75)
    result = await squall.run(
        chat_15_messages, users=users, ramp=batches(squall.scaled(25), 1.0), iterations=1
    )
    thresholds.check(
        result,
        response_time=["avg <= 3s", "p(95) <= 8s"],
        success="rate >= 0.90",
        delivery="rate >= 0.80",
        violations="value == 0",
        messages_sent=f"count >= {users * MESSAGES}",
        memory_growth_mb="value <= 500",
    )
