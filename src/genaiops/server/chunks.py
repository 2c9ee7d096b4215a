"""The OpenAI chunk stream of a streamed chat or text completion (SSE), and the pieces of
an answer both its streamed and whole forms share: choices, usage, finish reasons and log
probabilities in each endpoint's shape.

Once the first byte is sent the status line cannot change, so a failure, expected or not,
becomes an in-band error event before ``[DONE]``. With ``n`` > 1 the choices follow one
another: choice ``i`` starts once choice ``i - 1`` has finished, and the usage chunk,
after the last one, counts them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from genaiops.engines.base import Finished, TextDelta, ToolCalls
from genaiops.engines.logprobs import TokenLogprob
from genaiops.errors import GenaiopsError
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream
from genaiops.server.errors import error_payload, status_for
from genaiops.server.streaming import sse

log = logging.getLogger("genaiops.server")
# Spliced into a text chunk's serialised template in place of the text (see _Choice).
_MARKER = "\x00TEXT\x00"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def reason(finish: str) -> str:
    # "cancelled" never reaches a client that is still there; what a remote upstream
    # answered with (tool_calls, content_filter) is passed on.
    return finish if finish in ("length", "tool_calls", "content_filter") else "stop"


def logprobs_field(
    chat: bool, entries: Sequence[TokenLogprob], offset: int, top: int | None
) -> tuple[dict[str, Any], int]:
    """A choice's ``logprobs`` in the shape of its endpoint, and the text offset after it:
    chat's ``content`` list, or completions' parallel lists with ``text_offset``."""
    if chat:
        return {"content": [e.chat() for e in entries], "refusal": None}, offset
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.text)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, lp, _ in e.top} for e in entries] if top else None,
        "text_offset": offsets,
    }, offset


def choice(
    chat: bool, content: str | None, finish: str | None, role: bool, index: int = 0
) -> dict[str, Any]:
    if not chat:
        return {"index": index, "text": content or "", "logprobs": None, "finish_reason": finish}
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def stopping(stream: GenerationStream, ctx: RequestContext | None) -> None:
    """Mark a stream ended by its server stopping (recorded 503, not as the client's)."""
    if stream.stopping and ctx is not None:
        ctx.stream_error, ctx.stream_status = "shutdown", 503


def stream_failure(exc: Exception, stream_id: str, ctx: RequestContext | None) -> dict[str, Any]:
    """The error payload of a stream that failed after its status line went out, with
    the failure noted in the request context for the record stage."""
    if isinstance(exc, GenaiopsError):
        status, type_ = status_for(exc)
        if ctx is not None and ctx.stream_status is None:
            ctx.stream_status = status  # a timeout mid-stream is audited 504, not 200/499
        return error_payload(exc.message, type_, exc.param, exc.code)
    # Anything else is a bug or an engine crash: logged in full, shown without internals.
    request_id = ctx.request_id if ctx is not None else stream_id
    log.error("stream %s (request %s) failed", stream_id, request_id, exc_info=exc)
    if ctx is not None:
        ctx.stream_error = "server_error"
    message = "The server had an error while processing the request."
    return error_payload(message, "server_error")


def retrieval_fields(stream: GenerationStream, rag: bool) -> dict[str, Any]:
    """A retrieval answer's sources; ``citations: []`` when nothing relevant was found."""
    if not rag:
        return {}
    fields: dict[str, Any] = {"citations": stream.citations}
    if stream.groundedness is not None:
        fields["groundedness"] = stream.groundedness
    return fields


class ChunkStream:
    """The chunks of one streamed request, choice after choice."""

    def __init__(
        self,
        stream: GenerationStream,
        chat: bool,
        include_usage: bool,
        ctx: RequestContext | None = None,
        rag: bool = False,
        more: Callable[[int], Awaitable[GenerationStream]] | None = None,
        n: int = 1,
    ):
        self.stream, self.chat, self.ctx, self.rag = stream, chat, ctx, rag
        self.include_usage, self.more, self.n = include_usage, more, n
        self.head: dict[str, Any] = {
            "id": stream.request.request_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": stream.created,
            "model": stream.model,
        }
        if include_usage:
            self.head["usage"] = None
        self.top = stream.request.params.logprobs
        # Tokens of the choices already finished (the usage chunk and the record count all).
        self.used = [0, 0]
        self._begin(0)

    def _begin(self, index: int) -> None:
        self.index = index
        self.offset = 0  # of the next token in the answer (completions' ``text_offset``)
        # Text deltas are the hot path (one per token): the invariant part of their chunk
        # is serialised once per choice and the JSON-encoded text spliced in.
        template = self._chunk(_MARKER, None).decode()
        self.before, self.after = template.split(json.dumps(_MARKER, ensure_ascii=False))

    def _payload(self, content: str | None, finish: str | None, role: bool) -> dict[str, Any]:
        return self.head | {"choices": [choice(self.chat, content, finish, role, self.index)]}

    def _chunk(self, content: str | None, finish: str | None, role: bool = False) -> bytes:
        return sse(self._payload(content, finish, role))

    def _logprobs_chunk(self, event: TextDelta) -> bytes:
        part = choice(self.chat, event.text, None, False, self.index)
        part["logprobs"], self.offset = logprobs_field(
            self.chat, event.logprobs, self.offset, self.top
        )
        return sse(self.head | {"choices": [part]})

    def encode(self, event: Any) -> bytes:
        if isinstance(event, TextDelta):
            if self.top is not None:
                return self._logprobs_chunk(event)
            return (self.before + json.dumps(event.text, ensure_ascii=False) + self.after).encode()
        if isinstance(event, ToolCalls):
            # Each call whole in one delta (an upstream's argument fragments were joined
            # so the output guards could read them).
            calls = [{"index": i} | call for i, call in enumerate(event.calls)]
            part = {"index": self.index, "delta": {"tool_calls": calls}, "logprobs": None}
            return sse(self.head | {"choices": [part | {"finish_reason": None}]})
        if not isinstance(event, Finished):
            return b""
        # Retrieval answers carry their sources in the finishing chunk.
        finish = self._payload(None if self.chat else "", reason(event.reason), False)
        data = sse(finish | retrieval_fields(self.stream, self.rag))
        if self.include_usage and self.index == self.n - 1:
            total = usage(
                self.used[0] + event.prompt_tokens, self.used[1] + event.completion_tokens
            )
            data += sse(self.head | {"choices": [], "usage": total})
        return data

    async def _choice(self) -> AsyncIterator[bytes]:
        """The current choice's chunks: its opening (the role chunk and what the first
        model event released, in one write) and one chunk per event after it."""
        opening = self._chunk("", None, role=True) if self.chat else b""
        yield opening + b"".join(self.encode(event) for event in self.stream.started())
        async for event in self.stream:
            data = self.encode(event)
            if data:
                yield data

    async def _next(self, index: int) -> None:
        assert self.more is not None
        ctx = self.ctx
        if ctx is not None:
            self.used[0] += ctx.prompt_tokens
            self.used[1] += ctx.completion_tokens
            ctx.completion_tokens = 0
        self.stream = await self.more(index)
        self._begin(index)

    async def events(self) -> AsyncIterator[bytes]:
        ctx = self.ctx
        try:
            async for data in self._choice():
                yield data
            for index in range(1, self.n):
                await self._next(index)
                first = True
                async for data in self._choice():
                    yield data
                    if first:
                        # The first choice's response reported this (SSEResponse).
                        self.stream.shown()
                        first = False
        except Exception as exc:
            # Headers are gone; report the failure in-band as OpenAI-compatible servers do.
            stopping(self.stream, ctx)
            yield sse(stream_failure(exc, self.head["id"], ctx))
        except asyncio.CancelledError:
            stopping(self.stream, ctx)  # cut by the server, if it is stopping: 503, not 499
            raise
        finally:
            await self.stream.aclose()
            if ctx is not None:
                # The record stage reads the request's tokens here: every choice counts.
                ctx.prompt_tokens += self.used[0]
                ctx.completion_tokens += self.used[1]
        yield sse("[DONE]")
