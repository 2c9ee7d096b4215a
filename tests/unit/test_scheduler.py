"""The scheduler in isolation, driven by a small in-test engine that emits one token per
tick, so queueing, rejection, timeouts and cancellation can be observed exactly."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

import pytest

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
from genaiops.engines.scheduler import Scheduler
from genaiops.errors import GenerationTimeout, Overloaded

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TickEngine:
    name = "tick"
    max_concurrency = 1
    ready = True
    state = "ready"

    def __init__(self, tick: float = 0.01):
        self.tick = tick
        self.active = 0
        self.max_active = 0
        self.tokens = 0

    def info(self) -> ModelInfo:
        return ModelInfo("tick", "test", "", 100, False)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        return PreparedRequest(request, 1, request.params.max_tokens)

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            n = 0
            for _ in range(prepared.max_tokens or 0):
                if cancel.cancelled:
                    yield Finished("cancelled", 1, n)
                    return
                await asyncio.sleep(self.tick)
                n += 1
                self.tokens += 1
                yield TextDelta(f"t{n} ")
            yield Finished("length", 1, n)
        finally:
            self.active -= 1


def job(tokens: int) -> PreparedRequest:
    req = GenerationRequest("r", "tick", SamplingParams(max_tokens=tokens), prompt="x")
    return PreparedRequest(req, 1, tokens)


async def drain(ticket: object) -> list[GenerationEvent]:
    return [e async for e in ticket]  # type: ignore[attr-defined]


async def test_runs_one_at_a_time_and_everyone_completes() -> None:
    engine = TickEngine()
    s = Scheduler(engine, max_queue=5, timeout_s=10, retry_after_s=1)
    s.start()
    results = await asyncio.gather(*(drain(s.submit(job(5))) for _ in range(4)))
    await s.close()
    assert engine.max_active == 1
    for events in results:
        assert events[-1] == Finished("length", 1, 5)
        assert "".join(e.text for e in events[:-1] if isinstance(e, TextDelta)) == "t1 t2 t3 t4 t5 "
    assert s.stats.completed == 4 and s.stats.generated_tokens == 20


async def test_full_queue_rejects_immediately() -> None:
    s = Scheduler(TickEngine(), max_queue=1, timeout_s=10, retry_after_s=4)
    s.start()
    a, b = s.submit(job(3)), s.submit(job(3))
    with pytest.raises(Overloaded) as err:
        s.submit(job(3))
    assert err.value.retry_after == 4
    assert s.stats.rejected == 1
    await drain(a)
    await drain(b)
    s.submit(job(1))  # capacity is back once earlier jobs finish
    await s.close()


async def test_cancelled_queued_job_never_runs() -> None:
    engine = TickEngine()
    s = Scheduler(engine, max_queue=2, timeout_s=10, retry_after_s=1)
    s.start()
    first = s.submit(job(5))
    second = s.submit(job(50))
    await second.aclose()
    await drain(first)
    await asyncio.sleep(0.05)
    assert engine.tokens == 5
    assert s.stats.cancelled == 1
    await s.close()


async def test_a_withdrawn_job_keeps_no_prompt_while_it_waits_in_the_queue() -> None:
    """Clients that give up behind a long answer leave their jobs in the queue until the
    worker reaches them; the prompts they carried are freed at once."""
    engine = TickEngine(tick=0.02)
    s = Scheduler(engine, max_queue=8, timeout_s=10, retry_after_s=1)
    s.start()
    running = s.submit(job(100))
    await asyncio.sleep(0.05)
    prepared = job(5)
    freed = weakref.ref(prepared)
    queued = s.submit(prepared)
    del prepared
    await queued.aclose()
    gc.collect()
    assert freed() is None
    assert engine.active == 1 and s.stats.queued == 0 and s.stats.cancelled == 1
    await running.aclose()
    await s.close()


async def test_closing_a_running_job_stops_it_within_a_token() -> None:
    engine = TickEngine(tick=0.02)
    s = Scheduler(engine, max_queue=1, timeout_s=10, retry_after_s=1)
    s.start()
    ticket = s.submit(job(1000))
    seen = 0
    async for event in ticket:
        if isinstance(event, TextDelta):
            seen += 1
        if seen == 3:
            break
    at_close = engine.tokens
    await ticket.aclose()
    await asyncio.sleep(0.1)
    assert engine.active == 0
    # At most the token being generated when the client left, out of the 1,000 asked.
    assert engine.tokens <= at_close + 1
    await s.close()


async def test_deadline_raises_timeout_and_frees_the_model() -> None:
    engine = TickEngine(tick=0.02)
    s = Scheduler(engine, max_queue=1, timeout_s=0.1, retry_after_s=1)
    s.start()
    with pytest.raises(GenerationTimeout):
        await drain(s.submit(job(1000)))
    await asyncio.sleep(0.1)
    assert engine.active == 0
    assert s.stats.timed_out == 1
    s.timeout_s = 10
    events = await drain(s.submit(job(2)))
    assert events[-1] == Finished("length", 1, 2)
    await s.close()


async def test_engine_errors_reach_the_client() -> None:
    class Broken(TickEngine):
        async def generate(
            self, prepared: PreparedRequest, cancel: CancelToken
        ) -> AsyncIterator[GenerationEvent]:
            yield TextDelta("partial")
            raise RuntimeError("boom")

    s = Scheduler(Broken(), max_queue=1, timeout_s=5, retry_after_s=1)
    s.start()
    with pytest.raises(RuntimeError, match="boom"):
        await drain(s.submit(job(3)))
    assert s.stats.failed == 1
    await s.close()
