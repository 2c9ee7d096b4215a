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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from genaiops.errors import ConfigError

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    name: str | None = None


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


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


GenerationEvent = TextDelta | Finished


class CancelToken:
    """Set by whoever stops caring about a generation; checked by engines every token.

    A threading.Event underneath because the llama.cpp engines check it from their own
    OS thread.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

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
    known = sorted(
        set(_REGISTRY) | set(_BUILTIN) | {e.name for e in entry_points(group="genaiops.engines")}
    )
    raise ConfigError(f"unknown engine {name!r}; available: {', '.join(known)}")


def create_engine(config: ModelConfig, settings: Settings) -> Engine:
    return engine_factory(config.engine)(config, settings)
