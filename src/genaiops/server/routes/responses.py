"""OpenAI's Responses API, ``POST /v1/responses``: text in, text out, streamed or not.

A request becomes the same GenerationRequest a chat completion would (``instructions``
as the system message, then the ``input`` messages), so it goes through the whole
pipeline: keys and limits, guardrails, retrieval (``rag``), the model's scheduler, the
output guards, usage and audit. The answer is a ``response`` object with one output
message; a stream is the Responses event sequence (``response.created`` ...
``response.output_text.delta`` ... ``response.completed``), each event numbered. The
gateway keeps no responses: a follow-up sends its whole conversation in ``input``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from genaiops.engines.base import (
    ChatMessage,
    Finished,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    TextDelta,
)
from genaiops.errors import ContextLengthExceeded, InvalidRequest
from genaiops.gateway import structured
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream
from genaiops.server.chunks import stopping, stream_failure
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep
from genaiops.server.protocol import ErrorResponse
from genaiops.server.requests import JSONRoute
from genaiops.server.responses_wire import LOGPROBS_INCLUDE, ResponsesRequest
from genaiops.server.routes.openai import start
from genaiops.server.streaming import ClientDisconnected, SSEResponse, until_disconnect

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["openai"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}
# Set (and not null, false or empty), these need what this endpoint does not offer.
_STATEFUL = ("previous_response_id", "conversation", "background", "prompt")
_TEXT_PARTS = ("input_text", "output_text", "text")


def _refuse_unsupported(body: ResponsesRequest) -> None:
    extra = body.model_extra or {}
    for name in _STATEFUL:
        if getattr(body, name, None) or extra.get(name):
            raise InvalidRequest(
                f"{name} is not supported: this gateway keeps no responses or "
                "conversations; send the whole conversation in 'input'",
                param=name,
            )
    if body.tools:
        raise InvalidRequest(
            "tools are not supported on /v1/responses; /v1/chat/completions relays them "
            "to remote upstreams",
            param="tools",
        )
    unknown = [v for v in body.include or () if v != LOGPROBS_INCLUDE]
    if unknown:
        raise InvalidRequest(
            f"include value {unknown[0]!r} is not supported (only {LOGPROBS_INCLUDE!r})",
            param="include",
        )


def _messages(body: ResponsesRequest) -> list[ChatMessage]:
    messages = [ChatMessage("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        return [*messages, ChatMessage("user", body.input)]
    if not body.input:
        raise InvalidRequest("input is empty", param="input")
    for i, item in enumerate(body.input):
        if item.type != "message" or item.role is None:
            raise InvalidRequest(
                f"input item {i} is of type {item.type!r}; only messages (a role and their "
                "content) are supported here",
                param=f"input.{i}",
            )
        if item.content is None or isinstance(item.content, str):
            messages.append(ChatMessage(item.role, item.content or ""))
            continue
        texts = []
        for j, part in enumerate(item.content):
            if part.type not in _TEXT_PARTS or part.text is None:
                raise InvalidRequest(
                    f"input item {i} has a part of type {part.type!r}; the models behind "
                    "this endpoint read text parts (input_text, output_text)",
                    param=f"input.{i}.content.{j}",
                )
            texts.append(part.text)
        messages.append(ChatMessage(item.role, "".join(texts)))
    return messages


def responses_request(body: ResponsesRequest) -> GenerationRequest:
    _refuse_unsupported(body)
    fmt = ResponseFormat()
    if body.text is not None and body.text.format.type != "text":
        spec = body.text.format
        if spec.type == "json_schema" and spec.schema_ is None:
            raise InvalidRequest(
                "text.format of type json_schema needs a 'schema'", param="text.format.schema"
            )
        fmt = ResponseFormat(spec.type, spec.schema_, spec.name)
    wanted = LOGPROBS_INCLUDE in (body.include or ()) or body.top_logprobs is not None
    explicit = {"temperature", "top_p"} & body.model_fields_set
    if body.max_output_tokens is not None:
        explicit.add("max_tokens")
    params = SamplingParams(
        max_tokens=body.max_output_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        response_format=fmt,
        logprobs=(body.top_logprobs or 0) if wanted else None,
        explicit=frozenset(explicit),
    )
    extra: dict[str, Any] = {}
    if "rag" in (body.model_extra or {}):
        extra["rag"] = (body.model_extra or {})["rag"]
    if body.user is not None:
        extra["user"] = body.user
    return GenerationRequest(
        request_id="resp_" + uuid.uuid4().hex,
        model=body.model,
        params=params,
        messages=_messages(body),
        stream=body.stream,
        extra=extra,
    )


class _Shape:
    """The response object of one request, as it stands at a point of its life."""

    def __init__(self, body: ResponsesRequest, gen: GenerationRequest, stream: GenerationStream):
        self.body, self.gen, self.stream = body, gen, stream
        self.message_id = "msg_" + uuid.uuid4().hex

    def response(
        self, status: str, output: list[dict[str, Any]], finished: Finished | None = None
    ) -> dict[str, Any]:
        body, params = self.body, self.gen.params
        incomplete = None
        if status == "incomplete" and finished is not None:
            reason = "content_filter" if finished.reason == "content_filter" else None
            incomplete = {"reason": reason or "max_output_tokens"}
        fmt: dict[str, Any] = {"type": params.response_format.type}
        if params.response_format.type == "json_schema":
            fmt |= {"name": params.response_format.name or "response",
                    "schema": params.response_format.schema or {}}  # fmt: skip
        out: dict[str, Any] = {
            "id": self.gen.request_id,
            "object": "response",
            "created_at": self.stream.created,
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": self.stream.model,
            "output": output,
            "parallel_tool_calls": bool(body.parallel_tool_calls),
            "previous_response_id": None,
            "store": False,
            "temperature": params.temperature,
            "text": {"format": fmt},
            "tool_choice": "none",
            "tools": [],
            "top_p": params.top_p,
            "top_logprobs": body.top_logprobs,
            "truncation": "disabled",
            "user": body.user,
            "metadata": body.metadata or {},
            "usage": None,
        }
        if finished is not None:
            out["usage"] = _usage(finished.prompt_tokens, finished.completion_tokens)
        if "rag" in self.gen.extra or self.stream.citations:
            out["citations"] = self.stream.citations
        return out

    def message(self, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": parts}  # fmt: skip

    def text_part(self, text: str, logprobs: list[dict[str, Any]] | None) -> dict[str, Any]:
        part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
        part["logprobs"] = logprobs or []
        return part


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _status(reason: str) -> str:
    return "incomplete" if reason in ("length", "content_filter") else "completed"


@router.post("/responses", responses=ERRORS)
async def create_response(
    body: ResponsesRequest,
    request: Request,
    gateway: GatewayDep,
    ctx: ContextDep,
    _: InferenceDep,
) -> Response:
    gen = responses_request(body)
    try:
        if gen.stream:
            stream = await start(request, gateway, gen, ctx, "input")
            return SSEResponse(_events(_Shape(body, gen, stream), ctx), stream.shown)
        stream, done = await until_disconnect(
            request, structured.complete(gateway, gen, ctx, lambda work: work)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    except ContextLengthExceeded as exc:
        exc.param = "input"
        raise
    shape = _Shape(body, gen, stream)
    status = _status(done.finish_reason)
    if stream.canned and gen.params.response_format.type != "text":
        part: dict[str, Any] = {"type": "refusal", "refusal": done.text}
    else:
        entries = [e.chat() for e in done.logprobs] if done.logprobs is not None else None
        part = shape.text_part(done.text, entries)
    finished = Finished(done.finish_reason, done.prompt_tokens, done.completion_tokens)  # type: ignore[arg-type]
    return JSONResponse(shape.response(status, [shape.message(status, [part])], finished))


def _event(kind: str, number: int, fields: dict[str, Any]) -> bytes:
    data = json.dumps({"type": kind, "sequence_number": number} | fields, ensure_ascii=False)
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def _events(shape: _Shape, ctx: RequestContext | None) -> AsyncIterator[bytes]:
    """The Responses event stream. Once it has begun, a failure is an ``error`` event."""
    stream, number = shape.stream, 0
    ids = {"item_id": shape.message_id, "output_index": 0, "content_index": 0}
    texts: list[str] = []
    wanted = shape.gen.params.logprobs is not None
    entries: list[dict[str, Any]] = []

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal number
        number += 1
        return _event(kind, number - 1, fields)

    def opening() -> bytes:
        started = shape.response("in_progress", [])
        return (
            event("response.created", response=started)
            + event("response.in_progress", response=started)
            + event(
                "response.output_item.added", output_index=0, item=shape.message("in_progress", [])
            )  # fmt: skip
            + event("response.content_part.added", **ids, part=shape.text_part("", None))
        )

    def encode(item: Any) -> bytes:
        if isinstance(item, TextDelta):
            texts.append(item.text)
            logprobs = [e.chat() for e in item.logprobs] if wanted else []
            entries.extend(logprobs)
            return event("response.output_text.delta", **ids, delta=item.text, logprobs=logprobs)
        if not isinstance(item, Finished):
            return b""
        text, status = "".join(texts), _status(item.reason)
        part = shape.text_part(text, entries if wanted else None)
        message = shape.message(status, [part])
        final = shape.response(status, [message], item)
        return (
            event("response.output_text.done", **ids, text=text, logprobs=part["logprobs"])
            + event("response.content_part.done", **ids, part=part)
            + event("response.output_item.done", output_index=0, item=message)
            + event(
                "response.completed" if status == "completed" else "response.incomplete",
                response=final,
            )  # fmt: skip
        )

    try:
        yield opening() + b"".join(encode(item) for item in stream.started())
        async for item in stream:
            data = encode(item)
            if data:
                yield data
    except Exception as exc:
        stopping(stream, ctx)
        error = stream_failure(exc, shape.gen.request_id, ctx)["error"]
        code = error.get("code") or error.get("type")
        yield event("error", code=code, message=error["message"], param=error.get("param"))
    except asyncio.CancelledError:
        stopping(stream, ctx)
        raise
    finally:
        await stream.aclose()
