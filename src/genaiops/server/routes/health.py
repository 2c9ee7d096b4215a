"""Liveness (/healthz: the process answers) and readiness (/readyz: models loaded)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from genaiops import __version__
from genaiops.server.deps import GatewayDep
from genaiops.server.requests import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Ready once every model has finished loading and the default model is usable.

    A model that failed to load is listed with its reason; it does not hold the others back.
    """
    models = gateway.status()
    loading = [n for n, m in models.items() if m["state"] == "loading"]
    default = gateway.settings.default_model
    default_ok = models.get(default, {}).get("state") == "ready"
    ready = not loading and default_ok
    body = {"status": "ready" if ready else "not_ready", "default_model": default, "models": models}
    return JSONResponse(body, status_code=200 if ready else 503)
