"""OpenAI-compatible endpoints: /v1/models, /v1/chat/completions, /v1/completions."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from genaiops.engines.base import (
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
)
from genaiops.errors import (
    ContextLengthExceeded,
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
from genaiops.server.chunks import ChunkStream, logprobs_field, reason, usage
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep
from genaiops.server.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    SamplingIn,
)
from genaiops.server.requests import JSONRoute
from genaiops.server.streaming import ClientDisconnected, SSEResponse, until_disconnect

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


def _total_usage(answers: Sequence[Completion]) -> dict[str, int]:
    return usage(sum(a.prompt_tokens for a in answers), sum(a.completion_tokens for a in answers))


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
    return logprobs_field(chat, done.logprobs, 0, top)[0]


async def _generate(
    request: Request,
    gateway: Gateway,
    gen: GenerationRequest,
    ctx: RequestContext,
    body: SamplingIn,
    field: str,
    rag: bool = False,
) -> Response | tuple[GenerationStream, list[Completion]]:
    """A streamed request's chunk stream, or a whole answer: its first stream and every
    choice's completion. A context overflow names ``field``, the body field of the prompt."""
    n = body.n or 1
    limit = gateway.settings.scheduler.max_choices
    if n > limit:
        raise InvalidRequest(f"n is {n}; this server gives at most {limit} choices", param="n")
    try:
        if gen.stream:
            stream = await start(request, gateway, gen, ctx, field)

            def more(index: int) -> Awaitable[GenerationStream]:
                return choices.start(gateway, gen, ctx, stream, index)

            chat = gen.is_chat
            chunks = ChunkStream(stream, chat, _include_usage(body), ctx, rag, more, n)
            return SSEResponse(chunks.events(), stream.shown)
        # The whole answer (every choice, retries for structured output included) ends
        # with the client.
        return await until_disconnect(
            request, choices.complete(gateway, gen, ctx, lambda work: work, n)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    except ContextLengthExceeded as exc:
        exc.param = field
        raise


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
    outcome = await _generate(request, gateway, gen, ctx, body, "messages", gen_has_rag)
    if isinstance(outcome, Response):
        return outcome
    stream, answers = outcome
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
                "finish_reason": reason(done.finish_reason),
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
    outcome = await _generate(request, gateway, gen, ctx, body, "prompt")
    if isinstance(outcome, Response):
        return outcome
    stream, answers = outcome
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
                    "finish_reason": reason(done.finish_reason),
                }
                for i, done in enumerate(answers)
            ],
            "usage": _total_usage(answers),
        }
    )
