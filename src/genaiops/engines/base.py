"""The Engine protocol, the request/event types every engine speaks, and the registry.

An engine turns a GenerationRequest into a stream of events: zero or more TextDelta then
exactly one Finished. ``prepare`` runs first, on the event loop, before the request is
queued: it renders the chat template, counts prompt tokens and rejects what cannot run
(context overflow, bad schema), so such requests fail fast with a 400 instead of waiting in
line. Engines are found by name in a registry that built-ins and plugins (entry-point group
``genaiops.engines``) fill the same way.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from genaiops.engines.logprobs import TokenLogprob
from genaiops.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    name: str | None = None
    # Wire fields beyond role, content and name (``tool_calls``, ``tool_call_id``...), as
    # the caller sent them: remote upstreams get them back; local engines refuse tool use.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # The content's parts, as sent, when they are not all text (images, audio, files);
    # ``content`` holds the text parts joined, which is what the guards read.
    parts: tuple[dict[str, Any], ...] | None = field(default=None, compare=False)

    def uses_tools(self) -> bool:
        """Whether this message is a tool call or a tool's result."""
        return any(self.extra.get(k) for k in ("tool_calls", "tool_call_id", "function_call"))


@dataclass(frozen=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    # Log probabilities of the generated tokens, with this many alternatives each
    # (OpenAI's chat ``top_logprobs``, or completions' ``logprobs``); None: not wanted.
    logprobs: int | None = None
    # OpenAI's ``logit_bias``: token id -> value added to that token's logit before
    # sampling (-100 in practice bans a token, 100 forces it). Ids are the model's own.
    logit_bias: dict[int, float] = field(default_factory=dict)
    # Fields the caller set, by their wire name ("temperature", "top_p",
    # "max_completion_tokens"...): a remote upstream gets those, and keeps its own
    # defaults for the rest.
    explicit: frozenset[str] = frozenset()


@dataclass
class GenerationRequest:
    """One generation, chat (``messages``) or plain completion (``prompt``)."""

    request_id: str
    model: str
    params: SamplingParams
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    stream: bool = False
    # OpenAI fields this gateway does not interpret; remote engines forward them.
    extra: dict[str, Any] = field(default_factory=dict)
    # The HTTP request's id (``x-request-id``); remote engines send it on to the upstream.
    trace_id: str | None = None

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def prompt_chars(self) -> int:
        return len(self.prompt or "") + sum(len(m.content) for m in self.messages or [])

    def estimated_tokens(self) -> int:
        """Prompt tokens before (or without) tokenisation: four characters per token."""
        return max(1, -(-self.prompt_chars() // 4))


@dataclass
class PreparedRequest:
    request: GenerationRequest
    prompt_tokens: int | None
    max_tokens: int | None
    # Engine-specific state (token ids, compiled grammar); opaque to the gateway.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    text: str
    # With ``SamplingParams.logprobs``: the entries of the tokens this text completes.
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


def require_text_messages(model: str, request: GenerationRequest, tool_turns: bool = False) -> None:
    """For engines of text-only models: a conversation with non-text parts (or, unless
    the engine renders them, tool calls and tool results) is refused (400) instead of
    being shown to the model as bare text."""
    for i, message in enumerate(request.messages or ()):
        if message.parts:
            raise InvalidRequest(
                f"model '{model}' reads text only: image, audio or file parts need a "
                "remote model that supports them",
                param=f"messages.{i}",
            )
        if message.uses_tools() and not tool_turns:
            raise InvalidRequest(
                f"model '{model}' takes text only: tool calls and tool results need a model "
                "that calls tools (a llama.cpp or remote one)",
                param=f"messages.{i}",
            )


@dataclass(frozen=True)
class ToolCalls:
    """The tool calls of an answer, each whole, in OpenAI's shape (``id``, ``type``,
    ``function`` with ``name`` and ``arguments``); sent before Finished."""

    calls: tuple[dict[str, Any], ...]


GenerationEvent = TextDelta | ToolCalls | Finished


class CancelToken:
    """Set by whoever stops caring about a generation; checked by engines every token.

    A threading.Event underneath because the llama.cpp engines check it from their own
    OS thread.

    It also carries the one signal a streamed answer sends back to its engine: ``shown``,
    once the response's first bytes (the first text) have been handed to the client's
    connection. The llama.cpp engine waits for it, briefly, before decoding the second token
    (see ``LlamaCppEngine``), so the first token is not stuck behind a decode that takes
    every core.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._shown = threading.Event()

    def cancel(self) -> None:
        self._event.set()
        self._shown.set()  # nobody will show anything now: an engine waiting goes on

    def shown(self) -> None:
        self._shown.set()

    def wait_shown(self, timeout: float) -> bool:
        """Block (an engine's thread) until ``shown`` or ``timeout`` seconds."""
        return self._shown.wait(timeout)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class ModelInfo:
    name: str
    engine: str
    description: str
    context_length: int | None
    supports_chat: bool
    owned_by: str = "genaiops"


@runtime_checkable
class Engine(Protocol):
    """A loaded model. One instance per catalog entry."""

    name: str
    # How many requests the engine runs at once; the scheduler never exceeds it.
    max_concurrency: int

    @property
    def ready(self) -> bool: ...

    @property
    def state(self) -> str:
        """'loading', 'ready' or 'failed: <reason>'."""
        ...

    def info(self) -> ModelInfo: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def prepare(self, request: GenerationRequest) -> PreparedRequest: ...

    def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]: ...


@runtime_checkable
class Tokenizing(Protocol):
    """An engine that owns its tokenizer (local models): ``/tokenize`` and ``/detokenize``
    answer with the ids its model sees, the ids ``logit_bias`` names. A remote upstream
    tokenizes on its side, so the remote engine does not take part."""

    def token_ids(self, request: GenerationRequest) -> list[int]:
        """The prompt's ids as ``prepare`` would build them (chat template rendered,
        beginning-of-sequence token added), with no limit on their number."""
        ...

    def token_text(self, ids: list[int]) -> str:
        """The text of ``ids``; an id outside the vocabulary is an InvalidRequest."""
        ...

    def vocab_size(self) -> int: ...


@runtime_checkable
class RelaysTokenizer(Protocol):
    """An engine whose model tokenizes at its upstream: ``/tokenize`` and ``/detokenize``
    are relayed there (vLLM and genaiops serve them; an upstream without them is a 400)."""

    async def relay_tokenizer(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...


def check_token_ids(model: str, ids: Iterable[int], vocab: int, param: str = "tokens") -> None:
    """Token ids the model does not have are refused (``logit_bias``, ``/detokenize``),
    not ignored."""
    unknown = sorted(t for t in ids if not 0 <= t < vocab)
    if unknown:
        raise InvalidRequest(
            f"{param} names token id {unknown[0]}, which model '{model}' does not have "
            f"(its ids run from 0 to {vocab - 1}; /tokenize gives the ids of a text)",
            param=param,
        )


EngineFactory = Callable[["ModelConfig", "Settings"], Engine]

_REGISTRY: dict[str, EngineFactory] = {}
# Fallback when the package runs from a source tree without installed entry points.
_BUILTIN = {
    "llama_cpp": "genaiops.engines.llama_cpp:LlamaCppEngine",
    "remote": "genaiops.engines.remote:RemoteEngine",
    "transformers": "genaiops.engines.transformers_engine:TransformersEngine",
}


def register_engine(name: str, factory: EngineFactory) -> None:
    _REGISTRY[name] = factory


def _load(target: str) -> EngineFactory:
    module, _, attr = target.partition(":")
    factory: EngineFactory = getattr(import_module(module), attr)
    return factory


def engine_factory(name: str) -> EngineFactory:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for ep in entry_points(group="genaiops.engines"):
        if ep.name == name:
            factory: EngineFactory = ep.load()
            register_engine(name, factory)
            return factory
    if name in _BUILTIN:
        factory = _load(_BUILTIN[name])
        register_engine(name, factory)
        return factory
    raise ConfigError(f"unknown engine {name!r}; available: {', '.join(engine_names())}")


def is_engine(name: str) -> bool:
    """Whether a model may name ``name``; entry points are read only for a name that is
    neither built in nor registered (validating the catalog must not scan packages)."""
    return name in _REGISTRY or name in _BUILTIN or name in engine_names()


def engine_names() -> list[str]:
    """Every engine a model may name: built in, registered, or from an entry point."""
    return sorted(
        set(_REGISTRY) | set(_BUILTIN) | {e.name for e in entry_points(group="genaiops.engines")}
    )


def create_engine(config: ModelConfig, settings: Settings) -> Engine:
    return engine_factory(config.engine)(config, settings)
