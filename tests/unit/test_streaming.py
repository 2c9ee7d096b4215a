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
from genaiops.errors import ConfigError, ModelNotReady, Overloaded, UpstreamError
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream
from genaiops.server.chunks import ChunkStream

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
    async for raw in ChunkStream(stream, chat, True, ctx).events():
        # One write may carry several events (the role chunk and the first text do).
        for event in raw.decode().split("\n\n")[:-1]:
            payload = event.removeprefix("data: ")
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
        b'data: {"choices": ["text"]}\n\n',
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


async def _drain(engine: RemoteEngine, stream: bool = True) -> list[GenerationEvent]:
    request = GenerationRequest("r", "up", SamplingParams(), prompt="x", stream=stream)
    return [e async for e in engine.generate(PreparedRequest(request, None, None), CancelToken())]


async def test_a_stream_cut_before_its_end_is_not_a_finished_answer() -> None:
    text = b'data: {"choices": [{"index": 0, "delta": {"content": "Hello"}}]}\n\n'
    finish = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    bodies = {"cut": text, "no-done": text + finish, "whole": text + finish + b"data: [DONE]\n\n"}

    def reply(request: httpx.Request) -> httpx.Response:
        body = bodies[json.loads(request.content)["prompt"]]
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    engine = _remote(httpx.MockTransport(reply))
    for prompt, whole in (("cut", False), ("no-done", True), ("whole", True)):
        request = GenerationRequest("r", "up", SamplingParams(), prompt=prompt, stream=True)
        prepared = PreparedRequest(request, None, None)
        if whole:
            events = [e async for e in engine.generate(prepared, CancelToken())]
            assert isinstance(events[-1], Finished) and events[-1].reason == "stop"
        else:
            with pytest.raises(UpstreamError, match="ended the stream mid-answer"):
                async for _ in engine.generate(prepared, CancelToken()):
                    pass
    await engine.close()


async def test_what_an_upstream_says_about_itself_stays_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "db password=hunter2 at 10.0.0.5"}})

    engine = _remote(httpx.MockTransport(reply))
    with pytest.raises(UpstreamError) as failed:
        await _drain(engine, stream=False)
    assert "answered 500" in str(failed.value) and "hunter2" not in str(failed.value)
    assert "hunter2" in caplog.text  # the operators still see it

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    engine = _remote(httpx.MockTransport(refuse))
    with pytest.raises(UpstreamError) as unreachable:
        await _drain(engine)
    assert "upstream.test" not in str(unreachable.value) and "ConnectError" in str(
        unreachable.value
    )
    assert "http://upstream.test/v1" in caplog.text
    assert "upstream.test" not in engine.info().description


async def test_a_remote_model_that_failed_to_start_is_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GENAIOPS_TEST_UNSET_KEY", raising=False)
    config = ModelConfig(name="up", engine="remote", base_url="http://upstream.test/v1",
                         api_key_env="GENAIOPS_TEST_UNSET_KEY")  # fmt: skip
    engine = RemoteEngine(config, Settings())
    with pytest.raises(ConfigError):
        await engine.start()
    request = GenerationRequest("r", "up", SamplingParams(), prompt="x")
    with pytest.raises(ModelNotReady, match="failed to start"):
        engine.prepare(request)


async def test_first_write_of_a_chat_stream_carries_the_first_token() -> None:
    scheduler = Scheduler(BrokenEngine(), max_queue=1, timeout_s=10, retry_after_s=1)
    scheduler.start()
    request = GenerationRequest("c", "broken", SamplingParams(), prompt="x", stream=True)
    stream = GenerationStream(request, scheduler.submit(PreparedRequest(request, 1, 5)), "m")
    await stream.start()
    body = ChunkStream(stream, True, False).events()
    first = (await anext(body)).decode().split("\n\n")[:-1]
    deltas = [json.loads(e.removeprefix("data: "))["choices"][0]["delta"] for e in first]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hello"}]
    await body.aclose()
    await scheduler.close()


class _Request:
    """The part of a Starlette request until_disconnect reads: receive()."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def receive(self) -> dict[str, str]:
        return await self.messages.get()


async def test_until_disconnect_returns_the_work_and_stops_watching() -> None:
    from genaiops.server.streaming import until_disconnect

    request = _Request()
    assert await until_disconnect(request, asyncio.sleep(0, "done")) == "done"  # type: ignore[arg-type]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_until_disconnect_cancels_the_work_when_the_client_leaves() -> None:
    from genaiops.server.streaming import ClientDisconnected, until_disconnect

    request = _Request()
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    asyncio.get_running_loop().call_later(
        0.01, request.messages.put_nowait, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientDisconnected):
        await until_disconnect(request, work())  # type: ignore[arg-type]
    assert cleaned.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # not left marked as cancelled


async def test_until_disconnect_lets_an_outside_cancellation_through() -> None:
    from genaiops.server.streaming import until_disconnect

    request = _Request()

    async def caller() -> None:
        await until_disconnect(request, asyncio.sleep(30))  # type: ignore[arg-type]

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
