"""GET /metrics: Prometheus exposition, optionally behind its own bearer token (so a
scraper needs no API key and an API key cannot read metrics)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from genaiops.errors import AuthenticationError
from genaiops.monitoring.metrics import CONTENT_TYPE
from genaiops.server.deps import MetricsDep, SettingsDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, metrics: MetricsDep, settings: SettingsDep) -> Response:
    token = settings.metrics.token
    if token is not None:
        presented = request.headers.get("authorization", "")[:1024]
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise AuthenticationError("A valid metrics token is required.", code="invalid_token")
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
