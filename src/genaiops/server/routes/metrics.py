"""GET /metrics: Prometheus exposition.

The series carry tenant names and each tenant's traffic, so they are never public while
authentication is on: with ``metrics.token`` set, the scraper presents that token (it
needs no API key, and no API key can read metrics); without one, only the installation's
system administrator may read them. With ``auth.enabled = false`` they are open like
everything else."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from genaiops.errors import AuthenticationError, PermissionDenied
from genaiops.monitoring.metrics import CONTENT_TYPE
from genaiops.server.deps import MetricsDep, SecurityDep, SettingsDep
from genaiops.server.middleware import record_auth_failure
from genaiops.server.requests import JSONRoute

if TYPE_CHECKING:
    from genaiops.config import Settings
    from genaiops.security.principal import Principal
    from genaiops.security.service import SecurityService

router = APIRouter(route_class=JSONRoute, tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(
    request: Request, metrics: MetricsDep, settings: SettingsDep, security: SecurityDep
) -> Response:
    try:
        principal = await _scraper(request, settings, security)
    except AuthenticationError as exc:
        # Counted and audited like any other refused credential: this route checks its
        # own, outside the authentication middleware.
        record_auth_failure(request.scope, request.scope["state"]["ctx"], exc)
        raise
    if principal is not None and not principal.is_system_admin:
        raise PermissionDenied(
            "Metrics cover every tenant: they need the system administrator's key, or "
            "the scraper's metrics.token.",
            code="insufficient_role",
        )
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)


async def _scraper(
    request: Request, settings: Settings, security: SecurityService
) -> Principal | None:
    """The caller's principal, or None when the metrics token (or no authentication at
    all) lets it in."""
    token = settings.metrics.token
    presented = request.headers.get("authorization", "")[:1024]
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise AuthenticationError("A valid metrics token is required.", code="invalid_token")
        return None
    if not security.enabled:
        return None
    return await security.authenticate(presented or None)
