"""The request pipeline: every stage a generation passes through, in order.

    (authenticate happens before the route handler, in server/middleware.py, so the
    pipeline always knows the principal when security is on)
    route     -> model name to a loaded engine and its scheduler (404 if unknown)
    authorize -> the principal's key may use this model (403)
    limit     -> key and tenant request/token rates and token budgets (429), charged with
                 a prompt estimate (four characters per token); every later refusal or
                 failure still counts as a request but gives the tokens back
    guard     -> input guardrails on the caller's text: block (400 content_filter), redact
                 in place, or flag (gateway/guarding.py)
    retrieve  -> for requests with a ``rag`` option: the tenant's collection is searched and
                 the hits become numbered sources in the prompt (gateway/retrieval.py);
                 with nothing relevant, a "not found" answer without calling the model
    prepare   -> chat template, tokenisation, context-window and schema checks (400); a
                 prompt larger than a tokens-per-minute limit is refused here (429)
    schedule  -> a place in the model's bounded queue (429 when full)
    start    -> wait for the first event, so queue timeouts (504), upstream failures (502)
                and engine errors still become a proper HTTP status before any byte of a
                streamed answer is sent
    stream    -> text deltas, then one Finished event with token counts; output guardrails
                 check the answer a sentence at a time (OutputFilter) and restore the
                 caller's reversible PII placeholders
    settle    -> when the stream ends: completion tokens charged to rates and budgets, and
                 the prompt estimate corrected to the real count
    (record: the server's telemetry middleware turns the RequestContext into metrics, the
    access log line, usage counters and the audit record once the last byte is sent)

Caching slots in as a further stage here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genaiops.engines.base import (
    Finished,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
    ToolCalls,
)
from genaiops.engines.logprobs import Aligner, TokenLogprob
from genaiops.engines.scheduler import Ticket
from genaiops.errors import GenaiopsError, InvalidRequest, ModelNotFound, PermissionDenied
from genaiops.gateway.context import RequestContext
from genaiops.gateway.guarding import OutputFilter, guard_input
from genaiops.gateway.retrieval import retrieve

if TYPE_CHECKING:
    from genaiops.gateway.service import Gateway, ModelHandle
    from genaiops.guardrails.pii.redaction import Vault
    from genaiops.security.principal import Principal
    from genaiops.security.service import Admission, SecurityService

# Prompts longer than this are tokenised off the event loop.
_INLINE_PREPARE_CHARS = 16_000


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    # The answer's tool calls (remote upstreams only), in OpenAI's shape.
    tool_calls: list[dict[str, Any]] | None = None
    # With logprobs requested: the entries of the answer's tokens.
    logprobs: list[TokenLogprob] | None = None


class GenerationStream:
    """An admitted, started generation. Iterate for events; ``aclose`` cancels it."""

    def __init__(
        self,
        request: GenerationRequest,
        ticket: Ticket,
        model: str,
        ctx: RequestContext | None = None,
        settle: tuple[SecurityService, Admission] | None = None,
    ):
        self.request = request
        self.model = model
        self.created = int(time.time())
        self._ticket = ticket
        self._events = aiter(ticket)
        self._first: GenerationEvent | None = None
        self._ctx = ctx
        self._settle = settle
        self._deltas = 0
        self._finished = False
        # Logprobs entries waiting for the output guards to release their text.
        self._aligner = Aligner() if request.params.logprobs is not None else None
        # Sources the answer was grounded on (retrieval stage); returned to the caller.
        self.citations: list[dict[str, Any]] = []
        # Output guardrails and reversible-PII restoration (guardrails stage).
        self.output: OutputFilter | None = None
        # Cited chunk texts; with them the answer's groundedness is measured at the end.
        self.sources: list[str] = []
        # The answer given without the model (retrieval found nothing relevant), which
        # every other choice of the request gives too.
        self.canned_text: str | None = None
        self.groundedness: dict[str, Any] | None = None
        self._answer: list[str] = []

    @property
    def canned(self) -> bool:
        """Whether the answer is a fixed one, given without the model."""
        return self.canned_text is not None

    async def start(self) -> None:
        try:
            self._first = await anext(self._events)
        except BaseException:
            await self.aclose()
            raise

    def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        return self._iterate()

    def shown(self) -> None:
        """The streamed response's first bytes have been sent: the engine, which waits a
        moment for that after the first text (``CancelToken.shown``), decodes on."""
        token = getattr(self._ticket, "cancel_token", None)
        if token is not None:
            token.shown()

    def started(self) -> list[GenerationEvent]:
        """What the first model event releases, without waiting for more (nothing when
        the output guards hold it); iterating then goes on with the rest. A streamed
        response sends this with its first bytes."""
        if self._first is None:
            return []
        first, self._first = self._first, None
        try:
            return self._emit(first)
        except GenaiopsError as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: GenaiopsError) -> None:
        if self._ctx is not None:
            self._ctx.stream_error = exc.code or exc.kind

    async def _iterate(self) -> AsyncIterator[GenerationEvent]:
        try:
            for out in self.started():
                yield out
            async for event in self._events:
                for out in self._emit(event):
                    yield out
        except GenaiopsError as exc:
            self._failed(exc)
            raise
        finally:
            await self.aclose()

    def _emit(self, event: GenerationEvent) -> list[GenerationEvent]:
        """Observe a model event and pass it through the output guards."""
        self._observe(event)
        output = self.output
        if output is None or not output.active:
            out = [event]
        elif isinstance(event, TextDelta):
            if self._aligner is not None:
                self._aligner.add(event.logprobs)
            text = output.feed(event.text)
            out = [TextDelta(text, self._aligned(output))] if text else []
        else:
            # The text held so far goes out first (whole: nothing follows it).
            rest = output.flush()
            if isinstance(event, ToolCalls):
                event = output.tool_calls(event)
            out = [TextDelta(rest, self._aligned(output)), event] if rest else [event]
        if self.sources:
            for item in out:
                if isinstance(item, TextDelta):
                    self._answer.append(item.text)
                elif isinstance(item, Finished):
                    self._measure_groundedness()
        return out

    def _aligned(self, output: OutputFilter) -> tuple[TokenLogprob, ...]:
        """The logprobs entries of the text the output guards just released: those of
        text they let through unchanged (see engines/logprobs.py)."""
        entries: tuple[TokenLogprob, ...] = ()
        if self._aligner is not None:
            for end, unchanged in output.releases:
                entries += self._aligner.release(end, unchanged)
        output.releases.clear()
        return entries

    def _measure_groundedness(self) -> None:
        from genaiops.guardrails.groundedness import groundedness

        self.groundedness = groundedness("".join(self._answer), self.sources)
        guardrails = self.output.guardrails if self.output is not None else None
        policy = guardrails.settings.groundedness if guardrails is not None else None
        if policy is None or not policy.enabled or self._ctx is None:
            return
        if self.groundedness["score"] < (policy.threshold or 0.0):
            self._ctx.guardrail_events.append(
                {
                    "stage": "output",
                    "guard": "groundedness",
                    "action": policy.action,
                    "kinds": ["unsupported_sentences"],
                }
            )

    def _observe(self, event: GenerationEvent) -> None:
        ctx = self._ctx
        if isinstance(event, TextDelta):
            self._deltas += 1
            if ctx is not None and ctx.ttft_s is None:
                ctx.ttft_s = ctx.elapsed()
        elif isinstance(event, Finished):
            self._finished = True
            if ctx is not None:
                ctx.prompt_tokens = event.prompt_tokens
                ctx.completion_tokens = event.completion_tokens

    @property
    def stopping(self) -> bool:
        """Whether this generation's model is stopping with its server (see Gateway.drain):
        a cancellation then comes from the server, not from the client."""
        return bool(getattr(self._ticket, "stopping", False))

    async def aclose(self) -> None:
        await self._ticket.aclose()
        ctx = self._ctx
        if ctx is not None and not self._finished:
            # Stopped early (client gone, error): charge what was generated so far.
            ctx.completion_tokens = max(ctx.completion_tokens, self._deltas)
            ctx.cancelled = True
        if self._settle is not None:
            security, admission = self._settle
            self._settle = None
            prompt = ctx.prompt_tokens if ctx is not None else admission.prompt_tokens
            completion = ctx.completion_tokens if ctx is not None else self._deltas
            await security.settle(admission, prompt, completion)

    async def collect(self) -> Completion:
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        logprobs: list[TokenLogprob] = []
        finished: Finished | None = None
        async for event in self:
            if isinstance(event, TextDelta):
                parts.append(event.text)
                logprobs.extend(event.logprobs)
            elif isinstance(event, ToolCalls):
                calls.extend(event.calls)
            elif isinstance(event, Finished):
                finished = event
        if finished is None:
            finished = Finished("stop", 0, 0)
        return Completion(
            "".join(parts),
            finished.reason,
            finished.prompt_tokens,
            finished.completion_tokens,
            calls or None,
            logprobs if self.request.params.logprobs is not None else None,
        )


class _CannedTicket:
    """Stands in for a scheduler ticket when the answer is known without the model."""

    def __init__(self, text: str):
        self._events: list[GenerationEvent] = [TextDelta(text), Finished("stop", 0, 0)]

    def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerationEvent]:
        for event in self._events:
            yield event

    async def aclose(self) -> None:
        return None


async def _canned(
    request: GenerationRequest,
    text: str,
    model: str,
    ctx: RequestContext | None,
    settle: tuple[SecurityService, Admission] | None,
) -> GenerationStream:
    ticket: Any = _CannedTicket(text)
    stream = GenerationStream(request, ticket, model, ctx, settle)
    stream.canned_text = text
    await stream.start()
    return stream


def authorize_reference(gateway: Gateway, principal: Principal | None, name: str | None) -> None:
    """A key limited to other models gets its 403 before a registry version it names is
    looked up or loaded (a load takes seconds and a slot of ``max_loaded_adapters``). The
    authorize stage checks the resolved name again; catalog names need no early check."""
    if principal is None or principal.models is None or not name:
        return
    if gateway.is_registry_reference(name) and not principal.allows_model(_family(name)):
        principal.require_model(name)


async def _count_refused(gateway: Gateway, ctx: RequestContext | None) -> None:
    """A request refused before admission (a model that does not exist, or one the key may
    not use) still counts against the requests-per-minute limits, so model names cannot be
    probed, nor the audit log filled, faster than the key may send requests: past its
    limit the caller gets the 429 instead."""
    security = gateway.security
    if ctx is None or security is None:
        return
    admission = await security.admit_request(ctx, 0)
    if admission is not None:
        await security.refund(admission)


def _family(reference: str) -> str:
    """The registered model a reference names: "bot" for "bot@champion" or "bot:3"."""
    return reference.split("@", 1)[0].split(":", 1)[0]


async def run(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None = None,
    prior: GenerationStream | None = None,
) -> GenerationStream:
    """``prior``: the first attempt, when this is a second one at the same request
    (gateway/structured.py); the request was guarded and grounded then, and its vault,
    citations and sources carry over."""
    principal = ctx.principal if ctx is not None else None
    if ctx is not None and request.trace_id is None:
        request.trace_id = ctx.request_id
    try:
        authorize_reference(gateway, principal, request.model)
        handle = await gateway.acquire(
            request.model,
            principal.tenant if principal is not None else None,
            reserve=True,
            visible=principal.allows_model if principal is not None else None,
        )
    except (ModelNotFound, PermissionDenied) as exc:
        if ctx is not None and isinstance(exc, ModelNotFound):
            # Not the requested name: metrics labels must not be chosen by callers.
            ctx.model = "unknown"
        await _count_refused(gateway, ctx)
        raise
    try:
        return await _run(gateway, request, ctx, handle, prior)
    finally:
        # A registry version stays loaded while it is reserved; once the request is in its
        # scheduler's queue (or has failed) the queue's own counts keep it loaded.
        gateway.adapters.release(handle)


async def _run(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None,
    handle: ModelHandle,
    prior: GenerationStream | None = None,
) -> GenerationStream:
    principal = ctx.principal if ctx is not None else None
    model = handle.config.name
    if ctx is not None:
        ctx.model = model
    # A key limited to "support-bot" may use any of its versions and aliases.
    family = _family(model) if gateway.is_registry_reference(model) else None
    if principal is not None and not (family and principal.allows_model(family)):
        try:
            principal.require_model(request.model or model)
        except PermissionDenied:
            await _count_refused(gateway, ctx)
            raise
    security = gateway.security
    admission = None
    if ctx is not None and security is not None:
        # Limits come before any other work (guardrails, retrieval, the model), charged
        # with an estimate of the prompt that settle corrects to the real count.
        admission = await security.admit_request(ctx, request.estimated_tokens())
    try:
        return await _admitted(gateway, request, ctx, handle, prior, admission)
    except BaseException:
        if admission is not None and security is not None:
            # The model never took the prompt: the request counts, its tokens do not.
            if ctx is not None:
                ctx.prompt_tokens = 0
            await security.refund(admission)
        raise


async def _admitted(
    gateway: Gateway,
    request: GenerationRequest,
    ctx: RequestContext | None,
    handle: ModelHandle,
    prior: GenerationStream | None,
    admission: Admission | None,
) -> GenerationStream:
    principal = ctx.principal if ctx is not None else None
    model = handle.config.name
    security = gateway.security
    settle = (security, admission) if security is not None and admission is not None else None
    vault: Vault | None = None
    guardrails = gateway.guardrails
    citations: list[dict[str, Any]] = []
    sources: list[str] = []
    if prior is not None and prior.canned_text is not None:
        return await _canned(request, prior.canned_text, model, ctx, settle)
    if prior is not None:
        vault = prior.output.vault if prior.output is not None else None
        citations, sources = prior.citations, prior.sources
    elif guardrails is not None:
        vault = await guard_input(guardrails, request, ctx)
    output = OutputFilter(guardrails, vault, ctx) if guardrails is not None else None
    rag_options = request.extra.pop("rag", None)
    if rag_options is not None:
        if gateway.rag is None:
            raise InvalidRequest("Retrieval is not available in this process.", param="rag")
        found = await retrieve(
            gateway.rag, request, handle, principal, rag_options, guardrails, ctx, vault
        )
        if found.canned is not None:
            return await _canned(request, found.canned, model, ctx, settle)
        citations = found.citations
        sources = found.sources
    engine = handle.engine
    if request.prompt_chars() > _INLINE_PREPARE_CHARS:
        prepared = await asyncio.to_thread(engine.prepare, request)
    else:
        prepared = engine.prepare(request)
    # Remote engines do not tokenise locally: the estimate stands until their usage.
    prompt_tokens = prepared.prompt_tokens or request.estimated_tokens()
    if ctx is not None and settle is not None:
        await settle[0].fit_prompt(ctx, settle[1], prompt_tokens)
    ticket = handle.scheduler.submit(prepared)
    stream = GenerationStream(request, ticket, model, ctx, settle)
    stream.citations = citations
    stream.output = output
    stream.sources = sources
    await stream.start()
    if ctx is not None:
        # Until the model has started, a failure gives the prompt's estimate back.
        ctx.prompt_tokens = prompt_tokens
    return stream
