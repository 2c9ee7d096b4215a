"""Liveness (/healthz: the process answers) and readiness (/readyz: models loaded)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from genaiops import __version__
from genaiops.errors import AuthenticationError
from genaiops.security.principal import Permission
from genaiops.security.service import SecurityService
from genaiops.server.deps import GatewayDep, SecurityDep
from genaiops.server.requests import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(request: Request, gateway: GatewayDep, security: SecurityDep) -> JSONResponse:
    """Ready once the guards and every model have finished loading and the default model
    is usable. A model that failed to load does not hold the others back.

    Anyone may ask (probes carry no key) and learns the status and how many models are in
    each state. Model names, states with their reasons and queue statistics are for an
    operator or administrator presenting their key (or anyone with authentication off).
    """
    models = gateway.status()
    warm_up = getattr(request.app.state, "warm_up", None)
    warming = warm_up is not None and not warm_up.done()
    failed = (
        warm_up is not None
        and warm_up.done()
        and not warm_up.cancelled()
        and warm_up.exception() is not None
    )
    loading = [n for n, m in models.items() if m["state"] == "loading"]
    default = gateway.settings.default_model
    default_ok = models.get(default, {}).get("state") == "ready"
    ready = not loading and default_ok and not warming and not failed
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready"}
    viewer = await _viewer(request, security)
    if viewer is not None:
        guards = "loading" if warming else "ready"
        if failed and warm_up is not None:
            guards = f"failed: {warm_up.exception()}"
        body |= {"default_model": default, "guardrails": guards}
        # A tenant's operator sees the catalog and the registry versions it may use.
        body["models"] = models if viewer == "" else gateway.status(viewer)
    else:
        counts = Counter(
            m["state"] if m["state"] in ("ready", "loading") else "failed" for m in models.values()
        )
        body["models"] = {"total": len(models)} | {
            state: counts.get(state, 0) for state in ("ready", "loading", "failed")
        }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _viewer(request: Request, security: SecurityService) -> str | None:
    """Who may see the details: None (nobody: a probe), "" (everything: the system
    administrator, or authentication off), or the tenant of an operator or admin."""
    if not security.enabled:
        return ""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    try:
        principal = await security.authenticate(authorization)
    except AuthenticationError:
        return None
    if not principal.can(Permission.READ_LOGS):
        return None
    return "" if principal.is_system_admin else principal.tenant
