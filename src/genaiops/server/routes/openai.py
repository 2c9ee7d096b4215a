"""OpenAI-compatible endpoints: /v1/models, /v1/chat/completions, /v1/completions."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from genaiops.engines.base import (
    Finished,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    TextDelta,
    ToolCalls,
)
from genaiops.engines.logprobs import TokenLogprob
from genaiops.errors import (
    ContextLengthExceeded,
    GenaiopsError,
    InvalidRequest,
    ModelNotFound,
)
from genaiops.gateway import choices
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import (
    Completion,
    GenerationStream,
    authorize_reference,
    new_request_id,
)
from genaiops.gateway.service import Gateway
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep
from genaiops.server.errors import error_payload, status_for
from genaiops.server.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    SamplingIn,
)
from genaiops.server.requests import JSONRoute
from genaiops.server.streaming import ClientDisconnected, SSEResponse, sse, until_disconnect

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["openai"])
log = logging.getLogger("genaiops.server")
# /v1/models' ``created``: when this server started serving its catalog.
_STARTED = int(time.time())

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}
# Fields the wire schema declares but that are not sampling parameters.
_NOT_EXTRA = {"ignore_eos"}
# Sampling fields a caller may set or leave to the model's defaults (see
# SamplingParams.explicit).
_SAMPLING_FIELDS = frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens"})


def _params(
    body: SamplingIn, max_tokens: int | None, fmt: ResponseFormat, logprobs: int | None = None
) -> SamplingParams:
    if (body.n or 1) > 1 and body.stream:
        raise InvalidRequest(
            "n > 1 is answered without streaming; leave out stream or ask for one choice",
            param="n",
        )
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest(
            "stream_options is only allowed when stream is true", param="stream_options"
        )
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=body.stops(),
        seed=body.seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        ignore_eos=body.ignore_eos,
        response_format=fmt,
        logprobs=logprobs,
        logit_bias=body.token_biases(),
        explicit=frozenset(body.model_fields_set & _SAMPLING_FIELDS),
    )


def _extra(body: SamplingIn) -> dict[str, Any]:
    extra = {k: v for k, v in (body.model_extra or {}).items() if k not in _NOT_EXTRA}
    if body.user is not None:
        extra["user"] = body.user  # end-user id for a remote upstream's abuse monitoring
    return extra


def chat_request(body: ChatCompletionRequest) -> GenerationRequest:
    fmt = ResponseFormat()
    if body.response_format is not None:
        kind = body.response_format.type
        if kind == "json_schema":
            spec = body.response_format.json_schema
            if spec is None:
                raise InvalidRequest(
                    "response_format of type json_schema needs a 'json_schema' object",
                    param="response_format.json_schema",
                )
            fmt = ResponseFormat("json_schema", spec.schema_, spec.name)
        else:
            fmt = ResponseFormat(kind)
    max_tokens = body.max_completion_tokens or body.max_tokens
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs set to true", param="top_logprobs")
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    messages = [m.message() for m in body.messages]
    return GenerationRequest(
        request_id=new_request_id("chatcmpl"),
        model=body.model,
        params=_params(body, max_tokens, fmt, logprobs),
        messages=messages,
        stream=bool(body.stream),
        extra=_extra(body),
    )


def completion_request(body: CompletionRequest) -> GenerationRequest:
    if body.echo or body.suffix or (body.best_of not in (None, 1)):
        raise InvalidRequest("echo, suffix and best_of are not supported", param="echo")
    max_tokens = 16 if body.max_tokens is None else body.max_tokens
    return GenerationRequest(
        request_id=new_request_id("cmpl"),
        model=body.model,
        params=_params(body, max_tokens, ResponseFormat(), body.logprobs),
        prompt=body.text(),
        stream=bool(body.stream),
        extra=_extra(body),
    )


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _total_usage(answers: Sequence[Completion]) -> dict[str, int]:
    return _usage(sum(a.prompt_tokens for a in answers), sum(a.completion_tokens for a in answers))


def _reason(reason: str) -> str:
    # "cancelled" never reaches a client that is still there; what a remote upstream
    # answered with (tool_calls, content_filter) is passed on.
    return reason if reason in ("length", "tool_calls", "content_filter") else "stop"


async def _events_to_sse(
    stream: GenerationStream,
    chat: bool,
    include_usage: bool,
    ctx: RequestContext | None = None,
    rag: bool = False,
) -> AsyncIterator[bytes]:
    """The OpenAI chunk stream. Once the first byte is sent the status line cannot change,
    so a failure, expected or not, becomes an in-band error event before ``[DONE]``."""
    req = stream.request
    head: dict[str, Any] = {
        "id": req.request_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": stream.created,
        "model": stream.model,
    }
    if include_usage:
        head["usage"] = None

    def chunk(content: str | None, finish: str | None, role: bool = False) -> bytes:
        return sse(payload(content, finish, role))

    def payload(content: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        return head | {"choices": [_choice(chat, content, finish, role)]}

    # Text deltas are the hot path (one per token): serialise the invariant part of their
    # chunk once and splice in the JSON-encoded text.
    marker = "\x00TEXT\x00"
    before, after = chunk(marker, None).decode().split(json.dumps(marker, ensure_ascii=False))

    def text_chunk(text: str) -> bytes:
        return (before + json.dumps(text, ensure_ascii=False) + after).encode()

    top = req.params.logprobs
    offset = 0  # of the next token in the answer (completions' ``text_offset``)

    def logprobs_chunk(event: TextDelta) -> bytes:
        nonlocal offset
        choice = _choice(chat, event.text, None, False)
        choice["logprobs"], offset = _logprobs(chat, event.logprobs, offset, top)
        return sse(head | {"choices": [choice]})

    def encode(event: Any) -> bytes:
        if isinstance(event, TextDelta):
            return text_chunk(event.text) if top is None else logprobs_chunk(event)
        if isinstance(event, ToolCalls):
            # Each call whole in one delta (an upstream's argument fragments were joined
            # so the output guards could read them).
            calls = [{"index": i} | call for i, call in enumerate(event.calls)]
            choice = {"index": 0, "delta": {"tool_calls": calls}, "logprobs": None}
            return sse(head | {"choices": [choice | {"finish_reason": None}]})
        if not isinstance(event, Finished):
            return b""
        # Retrieval answers carry their sources in the finishing chunk.
        finish = payload(None if chat else "", _reason(event.reason))
        data = sse(finish | _retrieval_fields(stream, rag))
        if include_usage:
            usage = _usage(event.prompt_tokens, event.completion_tokens)
            data += sse(head | {"choices": [], "usage": usage})
        return data

    try:
        # The first bytes: the role chunk and what the first model event released, in one
        # write (SSEResponse sends them before anything else).
        opening = chunk("", None, role=True) if chat else b""
        yield opening + b"".join(encode(event) for event in stream.started())
        async for event in stream:
            data = encode(event)
            if data:
                yield data
    except Exception as exc:
        # Headers are gone; report the failure in-band as OpenAI-compatible servers do.
        stopping(stream, ctx)
        yield _stream_error(exc, req.request_id, ctx)
    except asyncio.CancelledError:
        stopping(stream, ctx)  # cut by the server, if it is stopping: 503, not 499
        raise
    finally:
        await stream.aclose()
    yield sse("[DONE]")


def _logprobs(
    chat: bool, entries: Sequence[TokenLogprob], offset: int, top: int | None
) -> tuple[dict[str, Any], int]:
    """A choice's ``logprobs`` in the shape of its endpoint, and the text offset after it:
    chat's ``content`` list, or completions' parallel lists with ``text_offset``."""
    if chat:
        return {"content": [e.chat() for e in entries], "refusal": None}, offset
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.text)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, lp, _ in e.top} for e in entries] if top else None,
        "text_offset": offsets,
    }, offset


def _choice(chat: bool, content: str | None, finish: str | None, role: bool) -> dict[str, Any]:
    if not chat:
        return {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish}
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def stopping(stream: GenerationStream, ctx: RequestContext | None) -> None:
    """Mark a stream ended by its server stopping (recorded 503, not as the client's)."""
    if stream.stopping and ctx is not None:
        ctx.stream_error, ctx.stream_status = "shutdown", 503


def _stream_error(exc: Exception, stream_id: str, ctx: RequestContext | None) -> bytes:
    return sse(stream_failure(exc, stream_id, ctx))


def stream_failure(exc: Exception, stream_id: str, ctx: RequestContext | None) -> dict[str, Any]:
    """The error payload of a stream that failed after its status line went out, with
    the failure noted in the request context for the record stage."""
    if isinstance(exc, GenaiopsError):
        status, type_ = status_for(exc)
        if ctx is not None and ctx.stream_status is None:
            ctx.stream_status = status  # a timeout mid-stream is audited 504, not 200/499
        return error_payload(exc.message, type_, exc.param, exc.code)
    # Anything else is a bug or an engine crash: logged in full, shown without internals.
    request_id = ctx.request_id if ctx is not None else stream_id
    log.error("stream %s (request %s) failed", stream_id, request_id, exc_info=exc)
    if ctx is not None:
        ctx.stream_error = "server_error"
    message = "The server had an error while processing the request."
    return error_payload(message, "server_error")


def _retrieval_fields(stream: GenerationStream, rag: bool) -> dict[str, Any]:
    """A retrieval answer's sources; ``citations: []`` when nothing relevant was found."""
    if not rag:
        return {}
    fields: dict[str, Any] = {"citations": stream.citations}
    if stream.groundedness is not None:
        fields["groundedness"] = stream.groundedness
    return fields


async def start(
    request: Request, gateway: Gateway, gen: GenerationRequest, ctx: RequestContext, field: str
) -> GenerationStream:
    """Admit and start a generation, watching the client meanwhile: one that leaves while
    its request waits in the queue (or for its first token) cancels it and frees its place.
    A context overflow names ``field``, the body field that holds the prompt."""
    try:
        return await until_disconnect(request, gateway.generate(gen, ctx))
    except ContextLengthExceeded as exc:
        exc.param = field
        raise


def _message(
    text: str, refused: bool, tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    # A structured request answered "nothing relevant found" carries no JSON to parse:
    # like OpenAI's refusals, the text goes in ``refusal`` and ``content`` is null.
    if refused:
        return {"role": "assistant", "content": None, "refusal": text}
    if tool_calls:
        return {
            "role": "assistant",
            "content": text or None,
            "refusal": None,
            "tool_calls": tool_calls,
        }
    return {"role": "assistant", "content": text, "refusal": None}


def _answer_logprobs(chat: bool, done: Completion, top: int | None) -> dict[str, Any] | None:
    if done.logprobs is None:
        return None
    return _logprobs(chat, done.logprobs, 0, top)[0]


def _include_usage(body: SamplingIn) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


@router.get("/models", response_model=ModelList, responses=ERRORS)
async def list_models(gateway: GatewayDep, principal: InferenceDep) -> ModelList:
    """The models this caller's credentials may use: the catalog, then the fine-tuned
    versions of the registry by alias and latest version (``support-bot@champion``)."""
    cards = [_card(info) for info in gateway.models() if principal.allows_model(info.name)]
    for entry in await gateway.adapters.listing(principal.tenant):
        if principal.allows_model(entry["name"]):
            cards.append(
                ModelCard(
                    id=entry["id"],
                    created=int(entry.get("created") or _STARTED),
                    owned_by=entry["owned_by"],
                    capabilities={"chat": True, "completion": True},
                    description=f"{entry['name']} v{entry['version']}, fine-tuned (registry)",
                )
            )
    rag = gateway.rag
    if rag is not None:
        cards += [
            _embedder_card(rag, name)
            for name in rag.embedders.names()
            if principal.allows_model(name)
        ]
    return ModelList(data=cards)


def _embedder_card(rag: Any, name: str) -> ModelCard:
    """An embedder, for /v1/embeddings (OpenAI lists its embedding models here too)."""
    spec = rag.embedders.spec(name)
    dim = spec.get("dim")
    return ModelCard(
        id=name,
        created=_STARTED,
        owned_by="genaiops",
        capabilities={"chat": False, "completion": False, "embeddings": True},
        description=f"embedder ({spec.get('kind', 'embedder')}"
        + (f", {dim} dimensions)" if dim else ")"),
    )


@router.get("/models/{model:path}", response_model=ModelCard, responses=ERRORS)
async def get_model(model: str, gateway: GatewayDep, principal: InferenceDep) -> ModelCard:
    if gateway.rag is not None and model in gateway.rag.embedders.names():
        principal.require_model(model)
        return _embedder_card(gateway.rag, model)
    if not model:  # "/v1/models/": no name is no model, not the default one
        raise ModelNotFound("", [n for n in gateway.names() if principal.allows_model(n)])
    authorize_reference(gateway, principal, model)
    handle = await gateway.acquire(model, principal.tenant, visible=principal.allows_model)
    if not gateway.is_registry_reference(handle.config.name):
        principal.require_model(handle.config.name)
    return _card(handle.engine.info())


def _card(info: Any) -> ModelCard:
    return ModelCard(
        id=info.name,
        created=_STARTED,
        owned_by=info.owned_by,
        context_length=info.context_length,
        capabilities={"chat": info.supports_chat, "completion": True},
        description=info.description,
    )


@router.post("/chat/completions", responses=ERRORS)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    gateway: GatewayDep,
    ctx: ContextDep,
    _: InferenceDep,
) -> Response:
    gen = chat_request(body)
    gen_has_rag = "rag" in gen.extra
    try:
        if gen.stream:
            stream = await start(request, gateway, gen, ctx, "messages")
            return SSEResponse(
                _events_to_sse(stream, True, _include_usage(body), ctx, rag=gen_has_rag),
                stream.shown,
            )
        # The whole answer (every choice, retries for structured output included) ends
        # with the client.
        stream, answers = await until_disconnect(
            request, choices.complete(gateway, gen, ctx, lambda work: work, body.n or 1)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    refused = stream.canned and gen.params.response_format.type != "text"
    answer: dict[str, Any] = {
        "id": gen.request_id,
        "object": "chat.completion",
        "created": stream.created,
        "model": stream.model,
        "choices": [
            {
                "index": i,
                "message": _message(done.text, refused, done.tool_calls),
                "logprobs": _answer_logprobs(True, done, gen.params.logprobs),
                "finish_reason": _reason(done.finish_reason),
            }
            for i, done in enumerate(answers)
        ],
        "usage": _total_usage(answers),
    }
    if gen_has_rag:
        answer["citations"] = stream.citations
        if stream.groundedness is not None:
            answer["groundedness"] = stream.groundedness
    return JSONResponse(answer)


@router.post("/completions", responses=ERRORS)
async def completions(
    body: CompletionRequest,
    request: Request,
    gateway: GatewayDep,
    ctx: ContextDep,
    _: InferenceDep,
) -> Response:
    gen = completion_request(body)
    try:
        if gen.stream:
            stream = await start(request, gateway, gen, ctx, "prompt")
            return SSEResponse(
                _events_to_sse(stream, False, _include_usage(body), ctx), stream.shown
            )
        stream, answers = await until_disconnect(
            request, choices.complete(gateway, gen, ctx, lambda work: work, body.n or 1)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    except ContextLengthExceeded as exc:
        exc.param = "prompt"
        raise
    return JSONResponse(
        {
            "id": gen.request_id,
            "object": "text_completion",
            "created": stream.created,
            "model": stream.model,
            "choices": [
                {
                    "index": i,
                    "text": done.text,
                    "logprobs": _answer_logprobs(False, done, gen.params.logprobs),
                    "finish_reason": _reason(done.finish_reason),
                }
                for i, done in enumerate(answers)
            ],
            "usage": _total_usage(answers),
        }
    )
