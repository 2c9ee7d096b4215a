"""Server-sent events and client-disconnect handling shared by the routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientDisconnected(Exception):
    pass


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


class SSEResponse(StreamingResponse):
    """A streamed response that always closes its generator, however the client leaves.

    Closing the generator closes the generation, which cancels it in the engine at the
    next token. The status line and the first chunk (the first token, already generated
    when the response is built) are sent at once; Starlette's disconnect watching then
    takes over for the rest, so setting it up never delays the first token.
    ``on_start`` is called once, when those first bytes are on their way or the response
    ends without them (the generation's ``shown``: its engine may decode on).
    """

    def __init__(self, content: AsyncIterator[bytes], on_start: Callable[[], None] | None = None):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._source = content
        self._on_start = on_start

    async def stream_response(self, send: Send) -> None:
        # The response has started (see __call__): only the remaining chunks.
        async for chunk in self._source:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            first = await anext(self._source, b"")
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            self._started()
            await super().__call__(scope, receive, send)
        finally:
            self._started()  # never sent (the client left): the engine need not wait
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _started(self) -> None:
        notify, self._on_start = self._on_start, None
        if notify is not None:
            notify()


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` unless the client disconnects first, in which case it is cancelled
    and ClientDisconnected raised.

    The work runs in the caller's own task, so its result needs no hand-over from another
    task (one event-loop turn sooner to the first token); a watcher task cancels the
    caller when the client goes. A cancellation from elsewhere (server shutdown) still
    propagates as one."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                current.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        result = await work
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()
    if gone:
        # The work finished in spite of the cancellation; its answer goes nowhere, and
        # this task must not stay marked as being cancelled.
        current.uncancel()
    return result
