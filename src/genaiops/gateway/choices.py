"""Several answers to one request (OpenAI's ``n``), generated one after another.

The first choice goes through the whole pipeline; the others go on from its guarded and
grounded request (the same reversible-PII vault, citations and sources), each admitted,
generated, output-guarded and charged as a generation of its own. A seeded request's
choice ``i`` uses seed + i, so choice 0 is the answer the same request with ``n = 1``
gets and the whole set is reproducible; unseeded, each choice draws its own seed.

Usage counts every choice's tokens, the prompt once per choice, since each choice is a
pass of the model over it and is charged as one. A retrieval request that found nothing
relevant gets its canned answer once per choice, without the model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from genaiops.gateway import structured
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
    if stream.canned:
        return stream, done * n
    for index in range(1, n):
        again = replace(
            request,
            request_id=new_request_id("choice"),
            params=replace(request.params, seed=choice_seed(request.params.seed, index)),
            extra=dict(request.extra),
        )
        _, answer = await structured.complete(gateway, again, ctx, wait, prior=stream)
        done.append(answer)
    if ctx is not None:
        # The record stage reads the request's tokens here: every choice counts.
        ctx.prompt_tokens = sum(d.prompt_tokens for d in done)
        ctx.completion_tokens = sum(d.completion_tokens for d in done)
    return stream, done
