"""POST /v1/guardrails/check: run guards over a text and see what the policy would do."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from genaiops.server.deps import GuardrailsDep, InferenceDep
from genaiops.server.protocol import ErrorResponse, GuardrailsCheckRequest

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 429)
}
router = APIRouter(prefix="/v1/guardrails", tags=["guardrails"], responses=ERRORS)


@router.post("/check")
async def check(body: GuardrailsCheckRequest, _: InferenceDep, guardrails: GuardrailsDep) -> Any:
    """Without ``guards``, the policy of ``stage`` (input by default) applies."""
    outcome = await asyncio.to_thread(
        guardrails.check, body.input, stage=body.stage, guards=body.guards
    )
    return outcome.public()
