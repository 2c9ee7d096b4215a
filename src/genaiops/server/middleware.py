"""ASGI middleware (pure ASGI, so streamed responses pass through untouched).

BodyLimit refuses bodies above ``server.max_body_bytes`` with 413: at once when
Content-Length says so, or as soon as a chunked body crosses the limit, so an oversized
upload is never buffered whole.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genaiops.server.errors import error_payload


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

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
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(send, 400, "Invalid Content-Length header.", "invalid_request")
                return
            if size > self.max_bytes:
                await self._reply(send, 413, self._too_large(), "payload_too_large")
                return

        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises its own HTTPException from body parsing, so this
                    # reaches the error handlers as a 413.
                    raise HTTPException(status_code=413, detail=self._too_large())
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> str:
        return f"Request body exceeds the limit of {self.max_bytes} bytes."
