"""Structured outputs: a non-streamed answer requested with ``response_format``
``json_object`` or ``json_schema`` is parsed and validated against the schema; an invalid
answer is generated once more (with the next seed), and a second failure is an error
(502, ``invalid_structured_output``) rather than invalid JSON handed to the caller.

The second attempt goes on from the first one's guarded and grounded request: the same
reversible-PII vault, citations and sources, without checking or retrieving again. Its
usage counts the tokens of both attempts, since both were generated (and charged). An
answer cut by ``max_tokens`` (finish reason ``length``) is returned as it is, truncated,
as OpenAI does: generating it again would be cut the same way. A retrieval request that
found nothing relevant is answered without the model; with a response format, that answer
goes back as the message's ``refusal`` (content null), as OpenAI reports a model that
declines to fill the schema.

Local models rarely get here, since their decoding is constrained by a grammar built from
the schema, but that grammar cannot express every keyword (numeric ranges, string
formats, ``uniqueItems``...); remote upstreams may ignore the schema altogether.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from genaiops.engines.base import GenerationRequest, ResponseFormat
from genaiops.errors import StructuredOutputError
from genaiops.gateway import pipeline
from genaiops.gateway.pipeline import Completion, GenerationStream, new_request_id

if TYPE_CHECKING:
    from genaiops.gateway.context import RequestContext
    from genaiops.gateway.service import Gateway

Wait = Callable[[Awaitable[Completion]], Awaitable[Completion]]


def problem(text: str, fmt: ResponseFormat) -> str | None:
    """Why ``text`` does not satisfy ``fmt``; None when it does."""
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if fmt.type == "json_object":
        return None if isinstance(value, dict) else "not a JSON object"
    if not fmt.schema:
        return None
    import jsonschema

    try:
        jsonschema.validate(value, fmt.schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
        return f"{where}: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the schema itself is invalid: {exc.message}"
    return None


async def complete(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None,
    wait: Wait,
    prior: GenerationStream | None = None,
) -> tuple[GenerationStream, Completion]:
    """``prior``: an earlier answer to the same request (another of its ``n`` choices),
    whose guarded and grounded request this one goes on from."""
    stream = await pipeline.run(gateway, request, ctx, prior)
    done = await wait(stream.collect())
    fmt = request.params.response_format
    if fmt.type == "text" or stream.canned:
        # A "nothing relevant was found" answer is not the model's: generating again
        # would only ask the model without sources. The route returns it as a refusal.
        return stream, done
    first = problem(done.text, fmt)
    if first is None or done.finish_reason == "length":
        return stream, done
    if ctx is not None:
        ctx.guardrail_events.append(
            {"stage": "output", "guard": "json_schema", "action": "retry", "kinds": ["invalid"]}
        )
    seed = request.params.seed
    retry = replace(
        request,
        request_id=new_request_id("retry"),
        params=replace(request.params, seed=None if seed is None else seed + 1),
        extra=dict(request.extra),
    )
    before = done
    stream = await pipeline.run(gateway, retry, ctx, prior=stream)
    done = await wait(stream.collect())
    done = replace(
        done,
        prompt_tokens=before.prompt_tokens + done.prompt_tokens,
        completion_tokens=before.completion_tokens + done.completion_tokens,
    )
    if ctx is not None:
        # The record stage reads the request's tokens here: both attempts count.
        ctx.prompt_tokens = done.prompt_tokens
        ctx.completion_tokens = done.completion_tokens
    second = problem(done.text, fmt)
    if second is not None and done.finish_reason != "length":
        raise StructuredOutputError(
            "The model's answer did not match the requested response_format after one "
            f"retry: {second}",
            param="response_format",
        )
    return stream, done
