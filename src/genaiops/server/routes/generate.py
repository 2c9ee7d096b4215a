"""POST /generate: the simple endpoint (prompt in; text and token counts out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from genaiops.engines.base import ChatMessage, GenerationRequest, SamplingParams
from genaiops.gateway.pipeline import new_request_id
from genaiops.server.deps import ContextDep, GatewayDep, InferenceDep
from genaiops.server.protocol import GenerateRequest, GenerateResponse, Usage
from genaiops.server.requests import JSONRoute
from genaiops.server.routes.openai import ERRORS, start
from genaiops.server.streaming import ClientDisconnected, until_disconnect

router = APIRouter(route_class=JSONRoute, tags=["simple"])


def to_generation(body: GenerateRequest, supports_chat: bool, model: str) -> GenerationRequest:
    chat = body.mode == "chat" or (body.mode == "auto" and supports_chat)
    params = SamplingParams(
        max_tokens=body.max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=[body.stop] if isinstance(body.stop, str) else list(body.stop or []),
        seed=body.seed,
    )
    if chat:
        messages = [ChatMessage("system", body.system)] if body.system else []
        messages.append(ChatMessage("user", body.prompt))
        return GenerationRequest(new_request_id("gen"), model, params, messages=messages)
    prompt = f"{body.system}\n\n{body.prompt}" if body.system else body.prompt
    return GenerationRequest(new_request_id("gen"), model, params, prompt=prompt)


@router.post("/generate", response_model=GenerateResponse, responses=ERRORS)
async def generate(
    body: GenerateRequest,
    request: Request,
    gateway: GatewayDep,
    ctx: ContextDep,
    principal: InferenceDep,
) -> GenerateResponse | Response:
    handle = await gateway.acquire(body.model, principal.tenant, visible=principal.allows_model)
    gen = to_generation(body, handle.engine.info().supports_chat, handle.config.name)
    try:
        stream = await start(request, gateway, gen, ctx, "prompt")
        done = await until_disconnect(request, stream.collect())
    except ClientDisconnected:
        return Response(status_code=499)
    return GenerateResponse(
        id=gen.request_id,
        created=stream.created,
        model=stream.model,
        text=done.text,
        finish_reason="length" if done.finish_reason == "length" else "stop",
        usage=Usage(
            prompt_tokens=done.prompt_tokens,
            completion_tokens=done.completion_tokens,
            total_tokens=done.prompt_tokens + done.completion_tokens,
        ),
    )
