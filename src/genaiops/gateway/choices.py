"""Several answers to one request (OpenAI's ``n``), generated one after another.

The first choice goes through the whole pipeline; the others go on from its guarded and
grounded request (the same reversible-PII vault, citations and sources), each admitted,
generated, output-guarded and charged as a generation of its own. A seeded request's
choice ``i`` uses seed + i, so choice 0 is the answer the same request with ``n = 1``
gets and the whole set is reproducible; unseeded, each choice draws its own seed.

Usage counts every choice's tokens, the prompt once per choice, since each choice is a
pass of the model over it and is charged as one. A retrieval request that found nothing
relevant gets its canned answer once per choice, without the model (pipeline.run with a
canned ``prior``). Streamed, the choices follow one another in the chunk stream
(server/chunks.py), each started by ``start`` once the one before has finished.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from genaiops.gateway import pipeline, structured
from genaiops.gateway.pipeline import Completion, GenerationStream, new_request_id

if TYPE_CHECKING:
    from genaiops.engines.base import GenerationRequest
    from genaiops.gateway.context import RequestContext
    from genaiops.gateway.service import Gateway
    from genaiops.gateway.structured import Wait

_INT64 = 2**63 - 1


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice ``index``: seed + index, kept within a 64-bit integer."""
    if seed is None or index == 0:
        return seed
    return seed + index if seed <= _INT64 - index else seed - index


async def start(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None,
    first: GenerationStream,
    index: int,
) -> GenerationStream:
    """Start choice ``index`` of ``request``, going on from the first choice's stream."""
    return await pipeline.run(gateway, _choice(request, index), ctx, prior=first)


def _choice(request: GenerationRequest, index: int) -> GenerationRequest:
    return replace(
        request,
        request_id=new_request_id("choice"),
        params=replace(request.params, seed=choice_seed(request.params.seed, index)),
        extra=dict(request.extra),
    )


async def complete(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None,
    wait: Wait,
    n: int,
) -> tuple[GenerationStream, list[Completion]]:
    """The first choice's stream (its model, time and citations describe the answer) and
    every choice's completion, in order."""
    stream, first = await structured.complete(gateway, request, ctx, wait)
    done = [first]
    if n == 1:
        return stream, done
    used = [0, 0]  # tokens of the choices before the one running
    try:
        for index in range(1, n):
            if ctx is not None:
                used[0] += ctx.prompt_tokens
                used[1] += ctx.completion_tokens
                ctx.completion_tokens = 0
            again = _choice(request, index)
            _, answer = await structured.complete(gateway, again, ctx, wait, prior=stream)
            done.append(answer)
    finally:
        if ctx is not None:
            # The record stage reads the request's tokens here: every choice counts, the
            # one cut short (client gone, limit reached) with what it used.
            ctx.prompt_tokens += used[0]
            ctx.completion_tokens += used[1]
    return stream, done
