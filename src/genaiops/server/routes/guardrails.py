"""POST /v1/guardrails/check: run guards over a text and see what the policy would do."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from genaiops.server.deps import ContextDep, GuardrailsDep, InferenceDep, SecurityDep
from genaiops.server.protocol import ErrorResponse, GuardrailsCheckRequest
from genaiops.server.requests import JSONRoute

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 429)
}
router = APIRouter(
    route_class=JSONRoute, prefix="/v1/guardrails", tags=["guardrails"], responses=ERRORS
)


@router.post("/check")
async def check(
    body: GuardrailsCheckRequest,
    principal: InferenceDep,
    guardrails: GuardrailsDep,
    security: SecurityDep,
    ctx: ContextDep,
) -> Any:
    """Without ``guards``, the caller's effective policy of ``stage`` (input by default)."""
    # Recorded and rate-limited as a request of the "guardrails" model; it uses no tokens.
    ctx.model = "guardrails"
    async with security.admitted(ctx, 0):
        policies = guardrails.policies(body.stage, principal)
        outcome = await asyncio.to_thread(
            guardrails.check, body.input, stage=body.stage, guards=body.guards, policies=policies
        )
    return outcome.public()
