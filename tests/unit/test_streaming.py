"""Failures inside an already-started SSE stream: whatever goes wrong after the headers
are sent, the client gets an OpenAI-shaped error event and the closing ``[DONE]``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from genaiops.config import ModelConfig, Settings
from genaiops.engines.base import (
    CancelToken,
    Finished,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PreparedRequest,
    SamplingParams,
    TextDelta,
)
from genaiops.engines.remote import RemoteEngine
from genaiops.engines.scheduler import Scheduler
from genaiops.errors import Overloaded, UpstreamError
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream
from genaiops.server.routes.openai import _events_to_sse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class BrokenEngine:
    """Emits one token, then fails the way a bug in an engine thread would."""

    name = "broken"
    max_concurrency = 1
    ready = True
    state = "ready"

    def info(self) -> ModelInfo:
        return ModelInfo("broken", "test", "", 100, True)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        return PreparedRequest(request, 1, 5)

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        yield TextDelta("Hello")
        await asyncio.sleep(0)
        raise RuntimeError("llama_decode returned -3 at /internal/path.c")


async def _sse(chat: bool) -> tuple[list[object], RequestContext]:
    scheduler = Scheduler(BrokenEngine(), max_queue=1, timeout_s=10, retry_after_s=1)
    scheduler.start()
    request = GenerationRequest(
        "chatcmpl-test", "broken", SamplingParams(), messages=None, prompt="x", stream=True
    )
    ctx = RequestContext("req-test")
    stream = GenerationStream(request, scheduler.submit(PreparedRequest(request, 1, 5)), "m", ctx)
    await stream.start()
    events: list[object] = []
    async for raw in _events_to_sse(stream, chat, True, ctx):
        payload = raw.decode().removeprefix("data: ").strip()
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    await scheduler.close()
    return events, ctx


@pytest.mark.parametrize("chat", [True, False])
async def test_unexpected_error_mid_stream_is_reported_in_band(chat: bool) -> None:
    events, ctx = await _sse(chat)
    assert events[-1] == "[DONE]"
    error = events[-2]
    assert isinstance(error, dict)
    assert error["error"]["type"] == "server_error"
    assert set(error["error"]) == {"message", "type", "param", "code"}
    # No internals reach the client.
    assert "llama_decode" not in error["error"]["message"]
    assert "Hello" in json.dumps(events[:-2])
    assert ctx.stream_error == "server_error"


class SlowEngine(BrokenEngine):
    """Generates until cancelled."""

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        n = 0
        while not cancel.cancelled:
            await asyncio.sleep(0.005)
            n += 1
            yield TextDelta("x")
        yield Finished("cancelled", 1, n)


async def test_request_abandoned_in_the_queue_frees_its_place_at_once() -> None:
    scheduler = Scheduler(SlowEngine(), max_queue=1, timeout_s=10, retry_after_s=1)
    scheduler.start()
    request = GenerationRequest("r", "broken", SamplingParams(), prompt="x")
    running = scheduler.submit(PreparedRequest(request, 1, 5))
    await anext(aiter(running))
    queued = scheduler.submit(PreparedRequest(request, 1, 5))
    with pytest.raises(Overloaded):
        scheduler.submit(PreparedRequest(request, 1, 5))
    await queued.aclose()
    assert (scheduler.stats.queued, scheduler.stats.cancelled) == (0, 1)
    # Its place is free while the first request still runs.
    third = scheduler.submit(PreparedRequest(request, 1, 5))
    assert scheduler.stats.running == 1 and scheduler.stats.queued == 1
    await running.aclose()
    await third.aclose()
    await asyncio.sleep(0.05)
    assert scheduler.stats.queued == 0 and scheduler.stats.running == 0
    assert scheduler.stats.cancelled == 3
    await scheduler.close()


def _remote(handler: httpx.MockTransport) -> RemoteEngine:
    config = ModelConfig(name="up", engine="remote", base_url="http://upstream.test/v1")
    engine = RemoteEngine(config, Settings())
    engine._client = httpx.AsyncClient(base_url="http://upstream.test/v1/", transport=handler)
    return engine


@pytest.mark.parametrize(
    "last",
    [
        b'data: {"choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1}}\n\n',
        b"data: [1, 2, 3]\n\n",
        b'data: {"choices": [{"delta": "text"}]}\n\n',
    ],
)
async def test_malformed_upstream_stream_is_an_upstream_error(last: bytes) -> None:
    first = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=first + last + b"data: [DONE]\n\n",
            headers={"content-type": "text/event-stream"},
        )

    engine = _remote(httpx.MockTransport(reply))
    request = GenerationRequest("r", "up", SamplingParams(), prompt="x", stream=True)
    events: list[GenerationEvent] = []
    with pytest.raises(UpstreamError):
        async for event in engine.generate(PreparedRequest(request, None, None), CancelToken()):
            events.append(event)
    assert not any(isinstance(e, Finished) for e in events)
    await engine.close()
