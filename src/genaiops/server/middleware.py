"""ASGI middleware (pure ASGI, so streamed responses pass through untouched).

Outermost first:

Telemetry gives every request an id (a sane incoming ``x-request-id`` is kept), a
RequestContext in ``scope["state"]``, and the response headers the pipeline asked for
(``x-request-id``, ``x-ratelimit-*``); when the last byte has been sent it hands the
context to the record stage (metrics, access log, usage, audit).

Authenticate resolves credentials into a Principal before routing, for every path but the
public ones (probes, the API description at /docs and /openapi.json, /metrics with its
own token), so an unauthenticated caller learns nothing about the installation's data (no
model, tenant or collection name) and never gets a request body parsed.

BodyLimit refuses bodies above ``server.max_body_bytes`` with 413: at once when
Content-Length says so, or as soon as a chunked body crosses the limit, so an oversized
upload is never buffered whole.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genaiops.errors import AuthenticationError
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import new_request_id
from genaiops.server.errors import error_payload, error_response

log = logging.getLogger("genaiops.server")

PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
METRICS_PATH = "/metrics"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Telemetry:
    def __init__(self, app: ASGIApp, record: Any):
        """``record(ctx, status, scope)`` is called once per request, after the response."""
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _REQUEST_ID_RE.fullmatch(incoming) else new_request_id()
        )
        ctx = RequestContext(request_id, scope["method"], scope["path"])
        scope.setdefault("state", {})["ctx"] = ctx
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                extra = {"x-request-id": request_id} | ctx.headers
                headers.extend(
                    (k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present
                )
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            try:
                self.record(ctx, status, scope)
            except Exception:
                # Recording must never turn a served request into a failure.
                log.exception("recording request %s failed", request_id)


class Authenticate:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        ctx: RequestContext = scope["state"]["ctx"]
        try:
            ctx.principal = await state.security.authenticate(_header(scope, b"authorization"))
        except AuthenticationError as exc:
            record_auth_failure(scope, ctx, exc)
            response = error_response(exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def record_auth_failure(scope: Scope, ctx: RequestContext, exc: AuthenticationError) -> None:
    """Audit and count a refused credential (here, and on /metrics with its own token)."""
    state = scope["app"].state
    state.security.record_refusal(
        exc, client=_client(scope), path=scope.get("path", "")[:200], request_id=ctx.request_id
    )
    state.metrics.auth_failures.labels(exc.code or "invalid").inc()


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}" if client else None


_UPLOAD_PATH = re.compile(
    r"/v1/collections/[^/]+/documents|/v1/files|/admin/registry/[^/]+/versions"
)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes or max_bytes

    async def _reply(self, send: Send, status: int, message: str, code: str) -> None:
        body = json.dumps(error_payload(message, "invalid_request_error", None, code)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if _UPLOAD_PATH.fullmatch(scope["path"]) else self.max_bytes
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(send, 400, "Invalid Content-Length header.", "invalid_request")
                return
            if size > limit:
                await self._reply(send, 413, self._too_large(limit), "payload_too_large")
                return

        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises its own HTTPException from body parsing, so this
                    # reaches the error handlers as a 413.
                    raise HTTPException(status_code=413, detail=self._too_large(limit))
            return message

        await self.app(scope, limited, send)

    @staticmethod
    def _too_large(limit: int) -> str:
        return f"Request body exceeds the limit of {limit} bytes."
