"""OpenAI's Responses API, ``POST /v1/responses``, streamed or not.

A request becomes the same GenerationRequest a chat completion would
(server/responses_input.py), so it goes through the whole pipeline: keys and limits,
guardrails, retrieval (``rag``), the model's scheduler, the output guards, usage and
audit. The answer is a ``response`` object whose output is the model's message and the
function calls a remote upstream's model made; a stream is the Responses event sequence
(``response.created`` ... ``response.output_text.delta`` ... ``response.completed``),
each event numbered, each output item opened when its first content arrives. The
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

from genaiops.engines.base import Finished, GenerationRequest, TextDelta, ToolCalls
from genaiops.errors import ContextLengthExceeded, InvalidRequest
from genaiops.gateway import structured
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream
from genaiops.server.chunks import stopping, stream_failure
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep
from genaiops.server.protocol import ErrorResponse
from genaiops.server.requests import JSONRoute
from genaiops.server.responses_input import responses_request
from genaiops.server.responses_wire import ResponsesRequest
from genaiops.server.routes.openai import start
from genaiops.server.streaming import ClientDisconnected, SSEResponse, until_disconnect

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["openai"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}


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
        extra = self.gen.extra
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
            "parallel_tool_calls": extra.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "store": False,
            "temperature": params.temperature,
            "text": {"format": fmt},
            "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
            "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
            "top_p": params.top_p,
            "top_logprobs": body.top_logprobs,
            "truncation": "disabled",
            "user": body.user,
            "metadata": body.metadata or {},
            "usage": None,
        }
        if finished is not None:
            out["usage"] = _usage(finished.prompt_tokens, finished.completion_tokens)
        if self.stream.citations or self.stream.canned:
            out["citations"] = self.stream.citations
        return out

    def message(self, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": parts}  # fmt: skip

    def text_part(self, text: str, logprobs: list[dict[str, Any]] | None) -> dict[str, Any]:
        part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
        part["logprobs"] = logprobs or []
        return part


def _function_call(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    """A chat tool call (``{"id", "type", "function": {"name", "arguments"}}``) as the
    Responses output item it is."""
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": "fc_" + uuid.uuid4().hex,
        "call_id": str(call.get("id") or "call_" + uuid.uuid4().hex),
        "name": str(function.get("name") or ""),
        "arguments": str(function.get("arguments") or ""),
        "status": status,
    }


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
            return SSEResponse(_Events(_Shape(body, gen, stream), ctx).events(), stream.shown)
        stream, done = await until_disconnect(
            request, structured.complete(gateway, gen, ctx, lambda work: work)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    except ContextLengthExceeded as exc:
        exc.param = "input"
        raise
    except InvalidRequest as exc:
        if exc.param is not None and exc.param.startswith("messages."):
            exc.param = "input"  # a conversation the model cannot take, named as sent here
        raise
    shape = _Shape(body, gen, stream)
    status = _status(done.finish_reason)
    output: list[dict[str, Any]] = []
    if stream.canned and gen.params.response_format.type != "text":
        output.append(shape.message(status, [{"type": "refusal", "refusal": done.text}]))
    elif done.text or not done.tool_calls:
        entries = [e.chat() for e in done.logprobs] if done.logprobs is not None else None
        output.append(shape.message(status, [shape.text_part(done.text, entries)]))
    output += [_function_call(call) for call in done.tool_calls or ()]
    finished = Finished(done.finish_reason, done.prompt_tokens, done.completion_tokens)  # type: ignore[arg-type]
    return JSONResponse(shape.response(status, output, finished))


class _Events:
    """The Responses event stream of one request. Once it has begun, a failure is an
    ``error`` event."""

    def __init__(self, shape: _Shape, ctx: RequestContext | None):
        self.shape, self.ctx = shape, ctx
        self.number = 0
        self.items: list[dict[str, Any]] = []  # output items done, by output index
        self.message_index: int | None = None  # the message's, once it is opened
        self.texts: list[str] = []
        self.wanted = shape.gen.params.logprobs is not None
        self.entries: list[dict[str, Any]] = []

    def event(self, kind: str, **fields: Any) -> bytes:
        self.number += 1
        data = {"type": kind, "sequence_number": self.number - 1} | fields
        return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    def _ids(self) -> dict[str, Any]:
        return {"item_id": self.shape.message_id, "output_index": self.message_index,
                "content_index": 0}  # fmt: skip

    def _open_message(self) -> bytes:
        self.message_index = len(self.items)
        self.items.append({})  # its place; filled when it is done
        item = self.shape.message("in_progress", [])
        return self.event(
            "response.output_item.added", output_index=self.message_index, item=item
        ) + self.event("response.content_part.added", **self._ids(),
                       part=self.shape.text_part("", None))  # fmt: skip

    def _text(self, delta: TextDelta) -> bytes:
        opening = self._open_message() if self.message_index is None else b""
        self.texts.append(delta.text)
        logprobs = [e.chat() for e in delta.logprobs] if self.wanted else []
        self.entries.extend(logprobs)
        return opening + self.event(
            "response.output_text.delta", **self._ids(), delta=delta.text, logprobs=logprobs
        )

    def _calls(self, calls: ToolCalls) -> bytes:
        data = b""
        for call in calls.calls:
            item = _function_call(call)
            index = len(self.items)
            self.items.append(item)
            ids = {"item_id": item["id"], "output_index": index}
            data += (
                self.event("response.output_item.added", output_index=index,
                           item=item | {"status": "in_progress", "arguments": ""})
                + self.event("response.function_call_arguments.delta", **ids,
                             delta=item["arguments"])
                + self.event("response.function_call_arguments.done", **ids,
                             name=item["name"], arguments=item["arguments"])
                + self.event("response.output_item.done", output_index=index, item=item)
            )  # fmt: skip
        return data

    def _finish(self, finished: Finished) -> bytes:
        shape, status = self.shape, _status(finished.reason)
        data = b""
        if self.message_index is None and not self.items:
            data += self._open_message()  # an empty answer is still a message
        if self.message_index is not None:
            text = "".join(self.texts)
            part = shape.text_part(text, self.entries if self.wanted else None)
            message = shape.message(status, [part])
            self.items[self.message_index] = message
            data += (
                self.event("response.output_text.done", **self._ids(), text=text,
                           logprobs=part["logprobs"])
                + self.event("response.content_part.done", **self._ids(), part=part)
                + self.event("response.output_item.done", output_index=self.message_index,
                             item=message)
            )  # fmt: skip
        final = shape.response(status, self.items, finished)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return data + self.event(kind, response=final)

    def encode(self, item: Any) -> bytes:
        if isinstance(item, TextDelta):
            return self._text(item)
        if isinstance(item, ToolCalls):
            return self._calls(item)
        if isinstance(item, Finished):
            return self._finish(item)
        return b""

    async def events(self) -> AsyncIterator[bytes]:
        stream, ctx = self.shape.stream, self.ctx
        try:
            started = self.shape.response("in_progress", [])
            opening = self.event("response.created", response=started) + self.event(
                "response.in_progress", response=started
            )
            yield opening + b"".join(self.encode(item) for item in stream.started())
            async for item in stream:
                data = self.encode(item)
                if data:
                    yield data
        except Exception as exc:
            stopping(stream, ctx)
            error = stream_failure(exc, self.shape.gen.request_id, ctx)["error"]
            code = error.get("code") or error.get("type")
            yield self.event("error", code=code, message=error["message"], param=error.get("param"))
        except asyncio.CancelledError:
            stopping(stream, ctx)
            raise
        finally:
            await stream.aclose()
