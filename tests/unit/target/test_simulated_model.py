from __future__ import annotations

from squall.target.context import ContextMessage, build_context
from squall.target.model import SimulatedModel
from squall.target.settings import Settings


async def test_streams_answer_in_chunks_paced_by_the_sleeper() -> None:
    slept: list[float] = []

    async def sleeper(seconds: float) -> None:
        slept.append(seconds)

    settings = Settings(
        model_ttft_ms=20,
        model_tokens_per_second=100,
        model_answer_tokens=10,
        stream_chunk_tokens=4,
    )
    model = SimulatedModel(settings, sleeper)
    context = build_context("system", {}, [ContextMessage("user", "hello")], 100)
    chunks = [c async for c in model.stream(context)]
    assert [len(c.split()) for c in chunks] == [4, 4, 2]
    assert slept == [0.02, 0.04, 0.04, 0.02]
    assert model.completion_tokens("".join(chunks)) == 10
    again = [c async for c in model.stream(context)]
    assert again == chunks  # the answer is a function of the context
    other = build_context("system", {}, [ContextMessage("user", "bye")], 100)
    assert [c async for c in model.stream(other)] != chunks
