"""The request pipeline: every stage a generation passes through, in order.

    route    -> model name to a loaded engine and its scheduler (404 if unknown)
    prepare  -> chat template, tokenisation, context-window and schema checks (400)
    schedule -> a place in the model's bounded queue (429 when full)
    start    -> wait for the first event, so queue timeouts (504), upstream failures (502)
                and engine errors still become a proper HTTP status before any byte of a
                streamed answer is sent
    stream   -> text deltas, then one Finished event with token counts

Authentication, limits, guardrails, caching and retrieval slot in as further stages here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genaiops.engines.base import Finished, GenerationEvent, GenerationRequest, TextDelta
from genaiops.engines.scheduler import Ticket

if TYPE_CHECKING:
    from genaiops.gateway.service import Gateway

# Prompts longer than this are tokenised off the event loop.
_INLINE_PREPARE_CHARS = 16_000


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class GenerationStream:
    """An admitted, started generation. Iterate for events; ``aclose`` cancels it."""

    def __init__(self, request: GenerationRequest, ticket: Ticket, model: str):
        self.request = request
        self.model = model
        self.created = int(time.time())
        self._ticket = ticket
        self._events = aiter(ticket)
        self._first: GenerationEvent | None = None

    async def start(self) -> None:
        try:
            self._first = await anext(self._events)
        except BaseException:
            await self.aclose()
            raise

    def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerationEvent]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            async for event in self._events:
                yield event
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._ticket.aclose()

    async def collect(self) -> Completion:
        parts: list[str] = []
        finished: Finished | None = None
        async for event in self:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                finished = event
        if finished is None:
            finished = Finished("stop", 0, 0)
        return Completion(
            "".join(parts), finished.reason, finished.prompt_tokens, finished.completion_tokens
        )


async def run(gateway: Gateway, request: GenerationRequest) -> GenerationStream:
    handle = gateway.resolve(request.model)
    engine = handle.engine
    size = len(request.prompt or "") + sum(len(m.content) for m in request.messages or [])
    if size > _INLINE_PREPARE_CHARS:
        prepared = await asyncio.to_thread(engine.prepare, request)
    else:
        prepared = engine.prepare(request)
    ticket = handle.scheduler.submit(prepared)
    stream = GenerationStream(request, ticket, handle.config.name)
    await stream.start()
    return stream
