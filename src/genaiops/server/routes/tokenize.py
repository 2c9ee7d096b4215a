"""POST /tokenize and /detokenize (vLLM's shapes): a model's token ids for a prompt or a
conversation (its chat template rendered, as a chat request would be), and the text of
ids. They are the ids ``logit_bias`` names, and the counts requests are charged.

A remote model's come from its upstream's own /tokenize and /detokenize (vLLM, another
genaiops); an upstream without them (OpenAI, Ollama) makes a 400.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from genaiops.engines.base import (
    Engine,
    GenerationRequest,
    RelaysTokenizer,
    SamplingParams,
    Tokenizing,
)
from genaiops.errors import InvalidRequest
from genaiops.gateway.pipeline import authorize_reference, new_request_id
from genaiops.gateway.service import Gateway
from genaiops.security.principal import Principal
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep, SecurityDep
from genaiops.server.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    ErrorResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from genaiops.server.requests import JSONRoute

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 503)
}
router = APIRouter(route_class=JSONRoute, tags=["tokenizer"], responses=ERRORS)


async def _engine(gateway: Gateway, principal: Principal, name: str | None) -> Engine:
    """The engine of the model ``name`` names (a registry reference included), checked
    against the caller's key as a generation would be."""
    authorize_reference(gateway, principal, name)
    handle = await gateway.acquire(name, principal.tenant, visible=principal.allows_model)
    if not gateway.is_registry_reference(handle.config.name):
        principal.require_model(handle.config.name)
    engine = handle.engine
    if not isinstance(engine, Tokenizing | RelaysTokenizer):
        raise InvalidRequest(
            f"model '{handle.config.name}' offers no tokenizer to its callers", param="model"
        )
    return engine


@router.post("/tokenize", response_model=TokenizeResponse, response_model_exclude_none=False)
async def tokenize(
    body: TokenizeRequest,
    gateway: GatewayDep,
    principal: InferenceDep,
    security: SecurityDep,
    ctx: ContextDep,
) -> TokenizeResponse:
    """Exactly one of ``prompt`` (a completion's text) or ``messages`` (a chat)."""
    if (body.prompt is None) == (body.messages is None):
        raise InvalidRequest("give exactly one of 'prompt' or 'messages'", param="prompt")
    ctx.model = body.model or gateway.settings.default_model
    # Recorded and rate-limited as a request; it generates nothing and uses no tokens.
    async with security.admitted(ctx, 0):
        engine = await _engine(gateway, principal, body.model)
        if isinstance(engine, RelaysTokenizer):
            sent = body.model_dump(exclude_none=True, exclude={"model"})
            data = await engine.relay_tokenizer("tokenize", sent)
            tokens = data["tokens"]
            return TokenizeResponse(
                count=len(tokens),
                max_model_len=_int_or_none(data.get("max_model_len")),
                tokens=tokens,
                token_strs=_strs_or_none(data.get("token_strs"), len(tokens)),
            )
        assert isinstance(engine, Tokenizing)
        messages = None
        if body.messages is not None:
            messages = [m.message() for m in body.messages]
        offered = {"tools": body.tools, "tool_choice": body.tool_choice}
        request = GenerationRequest(
            new_request_id("tok"), ctx.model, SamplingParams(), messages, body.prompt,
            extra={k: v for k, v in offered.items() if v is not None},
        )  # fmt: skip
        ids = await asyncio.to_thread(engine.token_ids, request)
        strs = None
        if body.return_token_strs:
            strs = await asyncio.to_thread(lambda: [engine.token_text([i]) for i in ids])
    context = engine.info().context_length
    return TokenizeResponse(count=len(ids), max_model_len=context, tokens=ids, token_strs=strs)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strs_or_none(value: Any, count: int) -> list[str] | None:
    """An upstream's token texts, when it sent one string per token."""
    if isinstance(value, list) and len(value) == count and all(isinstance(v, str) for v in value):
        return value
    return None


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(
    body: DetokenizeRequest,
    gateway: GatewayDep,
    principal: InferenceDep,
    security: SecurityDep,
    ctx: ContextDep,
) -> DetokenizeResponse:
    ctx.model = body.model or gateway.settings.default_model
    async with security.admitted(ctx, 0):
        engine = await _engine(gateway, principal, body.model)
        if isinstance(engine, RelaysTokenizer):
            data = await engine.relay_tokenizer("detokenize", {"tokens": list(body.tokens)})
            return DetokenizeResponse(prompt=data["prompt"])
        assert isinstance(engine, Tokenizing)
        text = await asyncio.to_thread(engine.token_text, list(body.tokens))
    return DetokenizeResponse(prompt=text)
