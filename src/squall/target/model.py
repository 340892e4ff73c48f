"""The model behind the agent: one streaming interface, two backends.

``SimulatedModel`` (the default) needs no network: it waits ``model_ttft_ms``, then
streams ``model_answer_tokens`` tokens at ``model_tokens_per_second`` in chunks of
``stream_chunk_tokens``; the words are derived from a hash of the whole context, so the
work done is proportional to the context size. ``OpenAIModel`` streams
``POST {openai_base_url}/chat/completions`` from any OpenAI-compatible server. Both
yield text chunks; the agent publishes one ``agent_thinking`` per chunk.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import httpx

from squall.target.context import Context, estimate_tokens
from squall.target.settings import Settings

Sleeper = Callable[[float], Awaitable[None]]

_VOCABULARY = (
    "the", "agent", "considered", "your", "question", "and", "history", "of", "this",
    "thread", "before", "answering", "with", "a", "short", "plan", "data", "results",
    "context", "search", "tool", "stream", "token", "latency", "budget", "run",
)  # fmt: skip


class ModelError(RuntimeError):
    """The model backend failed; the run fails and is refunded."""


class Model(Protocol):
    def stream(self, context: Context) -> AsyncIterator[str]:
        """Yield the answer in chunks; their concatenation is the answer."""
        ...

    def completion_tokens(self, content: str) -> int:
        """Tokens of the answer, for ``usage.completion_tokens``."""
        ...

    async def aclose(self) -> None: ...


class SimulatedModel:
    def __init__(self, settings: Settings, sleeper: Sleeper) -> None:
        self._settings = settings
        self._sleep = sleeper

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"SimulatedModel(ttft_ms={s.model_ttft_ms}, tokens_per_second="
            f"{s.model_tokens_per_second}, answer_tokens={s.model_answer_tokens})"
        )

    async def stream(self, context: Context) -> AsyncIterator[str]:
        s = self._settings
        digest = hashlib.sha256("\n".join(context.parts()).encode()).digest()
        rng = random.Random(digest)
        words = [rng.choice(_VOCABULARY) for _ in range(s.model_answer_tokens)]
        if s.model_ttft_ms > 0:
            await self._sleep(s.model_ttft_ms / 1000)
        for start in range(0, len(words), s.stream_chunk_tokens):
            chunk = words[start : start + s.stream_chunk_tokens]
            if s.model_tokens_per_second > 0:
                await self._sleep(len(chunk) / s.model_tokens_per_second)
            yield (" " if start else "") + " ".join(chunk)

    def completion_tokens(self, content: str) -> int:
        return self._settings.model_answer_tokens

    async def aclose(self) -> None:
        return None


class OpenAIModel:
    """Streams chat completions over HTTP; chunks are regrouped to ``stream_chunk_tokens``."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        headers = {}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        self._client = client or httpx.AsyncClient(
            base_url=settings.openai_base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=5.0),
            trust_env=False,  # loopback only: never through a proxy from the environment
        )

    def __repr__(self) -> str:
        return f"OpenAIModel(base_url={self._settings.openai_base_url!r})"

    async def stream(self, context: Context) -> AsyncIterator[str]:
        s = self._settings
        system = context.system + ("\n" + context.preferences if context.preferences else "")
        messages = [{"role": "system", "content": system}]
        messages += [{"role": m.role, "content": m.content} for m in context.history]
        body = {
            "model": s.openai_model,
            "messages": messages,
            "stream": True,
            "max_tokens": s.model_answer_tokens,
        }
        buffer = ""
        url = f"{s.openai_base_url}/chat/completions"
        async with self._client.stream("POST", "chat/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:200]
                raise ModelError(
                    f"POST {url} answered {response.status_code}: {text!r}; check "
                    "SQUALL_OPENAI_BASE_URL, SQUALL_OPENAI_MODEL and SQUALL_OPENAI_API_KEY"
                )
            kind = response.headers.get("content-type", "")
            if not kind.lower().startswith("text/event-stream"):
                raise ModelError(
                    f"POST {url} answered {kind or 'no content type'!r}, not a stream of "
                    "server-sent events (text/event-stream); is it an OpenAI-compatible server?"
                )
            # The answer is whole only once the server says so: a stream that ends before
            # ``[DONE]`` was cut short, and the run fails rather than keep half an answer.
            finished = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    finished = True
                    break
                buffer += _delta(data, url)
                if estimate_tokens(buffer) >= s.stream_chunk_tokens:
                    yield buffer
                    buffer = ""
            if not finished:
                raise ModelError(f"POST {url}: the stream ended before its 'data: [DONE]'")
        if buffer:
            yield buffer

    def completion_tokens(self, content: str) -> int:
        return estimate_tokens(content)

    async def aclose(self) -> None:
        await self._client.aclose()


def _delta(data: str, url: str) -> str:
    """The text of one streamed chunk (``""`` for a chunk without any); :class:`ModelError`
    for an error the server streamed, or a chunk that is not a chat.completion.chunk."""
    try:
        chunk = json.loads(data)
        error = chunk.get("error")
        choices = chunk.get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
    except (ValueError, AttributeError, IndexError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{url} streamed {data[:100]!r}; expected an OpenAI chat.completion.chunk JSON object"
        ) from exc
    if error is not None:
        raise ModelError(f"{url} streamed an error: {json.dumps(error)[:200]}")
    return content if isinstance(content, str) else ""


def create_model(settings: Settings, sleeper: Sleeper) -> Model:
    """The backend ``settings.model`` selects."""
    if settings.model == "openai":
        return OpenAIModel(settings)
    return SimulatedModel(settings, sleeper)
