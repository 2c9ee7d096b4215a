"""The retrieval stage: a chat request with ``rag: {"collection": ..., "top_k": ...}``
(``extra_body`` in the openai client) is answered from the caller's tenant's collection
(the system administrator may name another with ``"tenant"``).

The question is the last user message; the hits are fitted into the model's context window
as numbered sources (rag/grounding.py), and their citations travel with the response. When
nothing relevant is found the request never reaches the model: the answer says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genaiops.engines.base import GenerationRequest
from genaiops.errors import InvalidRequest
from genaiops.security.principal import SYSTEM_TENANT, Principal

if TYPE_CHECKING:
    from genaiops.gateway.context import RequestContext
    from genaiops.gateway.service import ModelHandle
    from genaiops.guardrails.pii.redaction import Vault
    from genaiops.guardrails.service import GuardrailsService
    from genaiops.rag.service import RagService

# Part of the context window kept free for the answer when max_tokens is not given.
_DEFAULT_ANSWER_TOKENS = 512
# count_tokens() approximates; leave room for tokenizers that split finer.
_SAFETY = 0.75


class RagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    collection: str = Field(min_length=1, max_length=64)
    top_k: int = Field(default=5, ge=1, le=50)
    mode: str = Field(default="hybrid", pattern="^(hybrid|dense|lexical)$")
    filters: dict[str, Any] | None = None
    # The system administrator may answer from another tenant's collection.
    tenant: str | None = Field(default=None, min_length=1, max_length=64)


@dataclass
class Retrieval:
    citations: list[dict[str, Any]] = field(default_factory=list)
    # Full text of the cited chunks, for the groundedness check of the answer.
    sources: list[str] = field(default_factory=list)
    # Set when nothing relevant was found: the answer to give without generating.
    canned: str | None = None


# The parts of a retrieved chunk that reach the prompt.
_SCREENED = ("text", "title", "heading")


def _screen(
    guardrails: GuardrailsService,
    hits: list[Any],
    ctx: RequestContext | None,
    policies: dict[str, Any],
    vault: Vault | None = None,
) -> Any:
    """Apply the context policy to retrieved chunks. A chunk the policy blocks is dropped.
    A redaction keeps the chunk, with the values masked (numbered in the request's
    ``vault``, never restored in the answer), when every guard that asked for it finds
    values (``finds_values``: PII); a redaction asked by any other guard drops the chunk,
    since masking the phrases of an instruction planted in a document does not disarm it.
    """
    from genaiops.gateway.guarding import note

    def values_only(outcome: Any) -> bool:
        return all(
            getattr(guardrails.guard(name, policies[name].options), "finds_values", False)
            for name, action in outcome.actions.items()
            if action == "redact"
        )

    kept = []
    for hit in hits:
        # The prompt carries the chunk's document title and section heading beside its
        # text (``grounding.ground``), so an instruction planted in a heading is screened
        # like one in the body.
        changes: dict[str, str] = {}
        for part in _SCREENED:
            value = getattr(hit, part)
            if not value:
                continue
            outcome = guardrails.check(value, stage="context", policies=policies, vault=vault)
            note(ctx, outcome, "context")
            if outcome.action is None or outcome.action in ("flag", "log"):
                continue
            if outcome.action == "redact" and values_only(outcome):
                changes[part] = outcome.text
                continue
            break
        else:
            kept.append(replace(hit, **changes) if changes else hit)
    return kept


def parse_options(raw: Any) -> RagOptions:
    try:
        return RagOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # the option itself is not an object
            raise InvalidRequest(f"Invalid 'rag' option: {first['msg']}", param="rag") from None
        raise InvalidRequest(
            f"Invalid 'rag' option {where}: {first['msg']}", param=f"rag.{where}"
        ) from None


async def retrieve(
    rag: RagService,
    request: GenerationRequest,
    handle: ModelHandle,
    principal: Principal | None,
    raw_options: Any,
    guardrails: GuardrailsService | None = None,
    ctx: RequestContext | None = None,
    vault: Vault | None = None,
) -> Retrieval:
    options = parse_options(raw_options)
    if not request.messages:
        raise InvalidRequest("'rag' needs a chat request with a user message", param="rag")
    users = [i for i, m in enumerate(request.messages) if m.role == "user"]
    if not users:
        raise InvalidRequest("'rag' needs a user message to answer", param="messages")
    last = users[-1]
    question = request.messages[last].content
    history = request.messages[:last]
    if principal is not None:
        tenant = principal.scope(options.tenant) or principal.tenant
    else:
        tenant = options.tenant or SYSTEM_TENANT

    def search() -> Any:
        collection = rag.collection(tenant, options.collection)
        hits = rag.search_collection(
            collection,
            question,
            top_k=options.top_k,
            mode=options.mode,  # type: ignore[arg-type]
            filters=options.filters,
        )
        return collection, rag.relevant(hits, question, options.mode)  # type: ignore[arg-type]

    from genaiops.rag import grounding

    collection, hits = await asyncio.to_thread(search)
    if guardrails is not None:
        policies = guardrails.policies("context", principal, handle.config.name)
        if policies:
            hits = await asyncio.to_thread(_screen, guardrails, hits, ctx, policies, vault)
    language = collection.spec.language or "en"
    if not hits:
        return Retrieval(canned=grounding.not_found_answer(options.collection, question, language))
    context = handle.engine.info().context_length or 4096
    answer = request.params.max_tokens or min(_DEFAULT_ANSWER_TOKENS, context // 4)
    budget = int((context - answer) * _SAFETY)
    grounded = grounding.ground(history, question, hits, budget, language)
    if not grounded.citations:
        # Not one source fits the context window beside the conversation: answering now
        # would be answering without sources.
        return Retrieval(canned=grounding.not_found_answer(options.collection, question, language))
    request.messages = grounded.messages
    cited = {c["chunk_id"] for c in grounded.citations}
    sources = [h.text for h in hits if h.chunk_id in cited]
    if vault is not None and guardrails is not None and guardrails.settings.source_values_visible:
        # The caller may read these chunks (they are cited, and search returns them whole):
        # an answer that repeats their values leaks nothing to it. Values the context
        # policy masked are placeholders here and stay masked.
        for text in sources:
            vault.see(text)
    return Retrieval(citations=grounded.citations, sources=sources)
