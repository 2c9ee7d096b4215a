"""Remote engine: any OpenAI-compatible upstream (vLLM, TGI, Ollama, OpenAI, another
genaiops) reached over HTTP.

Requests are forwarded in the mode the client asked for (a streamed request streams from
the upstream) with the sampling fields the gateway understood plus every field it did not
(``extra``), so upstream-specific options pass through; tool definitions and calls,
non-text content parts and log probabilities are relayed both ways, and so are
``/tokenize`` and ``/detokenize`` to upstreams that serve them next to ``/v1`` (vLLM,
genaiops). Upstream answers are parsed back into engine events; the gateway re-frames
them, so ids and model names are the gateway's.
Failures map to domain errors: unreachable or 5xx upstream -> UpstreamError (502; what the
upstream said about itself, and its address, go to the log, not to the caller), a stream
that ends with neither a finish reason nor ``[DONE]`` -> UpstreamError too, a model that
failed to start -> ModelNotReady (503), timeout -> GenerationTimeout (504). Of the
upstream's 4xx answers, those about the caller's request (400, 413, 422, and 429 with its
Retry-After) keep their status and message; the others
(401, 403, 404...) mean the gateway itself is misconfigured (wrong upstream key or
upstream_model) and become 502, naming the upstream's status. A malformed answer is a 502
too. The request's ``x-request-id`` is sent on, so both sides log the same id.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from genaiops.engines.base import (
    CancelToken,
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PreparedRequest,
    TextDelta,
    ToolCalls,
)
from genaiops.engines.logprobs import from_wire
from genaiops.errors import (
    ConfigError,
    GenerationTimeout,
    InvalidRequest,
    ModelNotReady,
    UpstreamError,
    UpstreamHTTPError,
)

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

log = logging.getLogger("genaiops.engines")

# Upstream answers about the caller's own request, passed on with their status.
PASSTHROUGH_STATUSES = frozenset({400, 413, 422, 429})


class RemoteEngine:
    def __init__(self, config: ModelConfig, settings: Settings):
        self.name = config.name
        self.config = config
        self.max_concurrency = config.max_concurrency
        self._timeout = config.timeout_s or settings.scheduler.timeout_s
        self._client: httpx.AsyncClient | None = None
        self._state = "loading"

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def state(self) -> str:
        return self._state

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            engine="remote",
            description=self.config.description or "remote OpenAI-compatible upstream",
            context_length=None,
            supports_chat=True,
            owned_by="remote",
        )

    async def start(self) -> None:
        headers = {}
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if not key:
                self._state = f"failed: environment variable {self.config.api_key_env} is unset"
                raise ConfigError(
                    f"model '{self.name}': environment variable {self.config.api_key_env} "
                    "(its API key) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        assert self.config.base_url is not None
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(self._timeout, connect=self.config.connect_timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency * 2),
        )
        self._state = "ready"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._state = "closed"

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        if not self.ready:
            state = "failed to start" if self._state.startswith("failed") else self._state
            raise ModelNotReady(f"model '{self.name}' is not ready ({state})")
        return PreparedRequest(request, None, request.params.max_tokens)

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        p = request.params
        body: dict[str, Any] = dict(request.extra)
        body["model"] = self.config.upstream_model or self.name
        if request.messages is not None:
            path = "chat/completions"
            body["messages"] = [_wire_message(m) for m in request.messages]
        else:
            path = "completions"
            body["prompt"] = request.prompt
        # Sampling values the caller left out stay out: the upstream's own defaults (a
        # vLLM or Ollama model's generation config) apply, as they would if called directly.
        for name, value in (("temperature", p.temperature), ("top_p", p.top_p)):
            if name in p.explicit:
                body[name] = value
        if p.max_tokens is not None:
            # Under the name the caller used (OpenAI's reasoning models take only the new one).
            named = "max_completion_tokens" in p.explicit and request.messages is not None
            body["max_completion_tokens" if named else "max_tokens"] = p.max_tokens
        if p.stop:
            body["stop"] = p.stop
        if p.seed is not None:
            body["seed"] = p.seed
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
        if p.logprobs is not None and request.messages is not None:
            body["logprobs"], body["top_logprobs"] = True, p.logprobs
        elif p.logprobs is not None:
            body["logprobs"] = p.logprobs
        if p.logit_bias:
            body["logit_bias"] = {str(k): v for k, v in p.logit_bias.items()}
        fmt = p.response_format
        if fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt.type == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": fmt.name or "response", "schema": fmt.schema or {}},
            }
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return path, body

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        if self._client is None:
            raise ModelNotReady(f"model '{self.name}' is not ready ({self._state})")
        request = prepared.request
        path, body = self._body(request)
        headers = {"x-request-id": request.trace_id} if request.trace_id else None
        try:
            async with self._client.stream("POST", path, json=body, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response)
                if request.stream:
                    async for event in self._parse_stream(response, cancel, request):
                        yield event
                else:
                    await response.aread()
                    for event in self._parse_json(response, request):
                        yield event
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    def _transport_error(self, exc: httpx.HTTPError) -> Exception:
        if isinstance(exc, httpx.TimeoutException):
            return GenerationTimeout(f"upstream for '{self.name}' timed out: {exc!r}")
        # The upstream's address stays in the log: callers learn which model failed.
        log.warning("upstream for %r at %s failed: %r", self.name, self.config.base_url, exc)
        return UpstreamError(f"upstream for '{self.name}' failed ({type(exc).__name__})")

    async def relay_tokenizer(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``kind`` ("tokenize" or "detokenize") at the upstream, for its model."""
        if self._client is None:
            raise ModelNotReady(f"model '{self.name}' is not ready ({self._state})")
        assert self.config.base_url is not None
        root = self.config.base_url.rstrip("/").removesuffix("/v1")
        sent = body | {"model": self.config.upstream_model or self.name}
        try:
            response = await self._client.post(f"{root}/{kind}", json=sent)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code in (404, 405):
            raise InvalidRequest(
                f"model '{self.name}' is served by a remote upstream that does not {kind} "
                f"for its callers (it has no /{kind})",
                param="model",
            )
        if response.status_code >= 400:
            raise self._status_error(response)
        try:
            data = response.json()
            valid = (
                isinstance(data.get("tokens"), list)
                and all(isinstance(t, int) for t in data["tokens"])
                if kind == "tokenize"
                else isinstance(data.get("prompt"), str)
            )
        except (ValueError, AttributeError):
            valid = False
        if not valid:
            raise UpstreamError(f"upstream for '{self.name}' sent a malformed {kind} answer")
        result: dict[str, Any] = data
        return result

    def _status_error(self, response: httpx.Response) -> Exception:
        message = response.text[:500]
        param = code = error_type = None
        try:
            error = response.json().get("error", {})
            if isinstance(error, dict):
                message = str(error.get("message") or message)
                param, code, error_type = error.get("param"), error.get("code"), error.get("type")
            elif isinstance(error, str):
                message = error
        except (ValueError, AttributeError):
            pass
        status = response.status_code
        if status not in PASSTHROUGH_STATUSES:
            # Its own failure (a 5xx, or a 401 for the gateway's key): what it says about
            # itself (a stack trace, a database address) is for the operators' log.
            log.warning("upstream for %r answered %d: %s", self.name, status, message)
            return UpstreamError(f"upstream for '{self.name}' answered {status}")
        return UpstreamHTTPError(
            message,
            status=status,
            param=param if isinstance(param, str) else None,
            code=str(code) if code is not None else None,
            error_type=error_type if isinstance(error_type, str) else None,
            retry_after=_retry_after(response) if status == 429 else None,
        )

    def _parse_json(
        self, response: httpx.Response, request: GenerationRequest
    ) -> list[GenerationEvent]:
        calls: list[dict[str, Any]] = []
        try:
            data = response.json()
            choice = data["choices"][0]
            if "message" in choice:
                text = choice["message"].get("content") or ""
                calls = [_tool_call(c) for c in choice["message"].get("tool_calls") or []]
            else:
                text = choice.get("text") or ""
            wanted = request.params.logprobs is not None
            logprobs = from_wire(choice.get("logprobs"), text) if wanted else ()
            prompt, completion = _counts(data.get("usage"), request, text, 1 if text else 0)
            finished = Finished(_reason(choice.get("finish_reason")), prompt, completion)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"upstream for '{self.name}' sent a malformed answer") from exc
        events: list[GenerationEvent] = [TextDelta(text, logprobs)] if text else []
        if calls:
            events.append(ToolCalls(tuple(calls)))
        return [*events, finished]

    async def _parse_stream(
        self, response: httpx.Response, cancel: CancelToken, request: GenerationRequest
    ) -> AsyncIterator[GenerationEvent]:
        reason: str | None = None
        done = False
        usage: dict[str, Any] = {}
        calls = _CallBuilder()
        answer: list[str] = []
        async for line in response.aiter_lines():
            if cancel.cancelled:
                return
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(payload)
                if not isinstance(chunk, dict):
                    raise TypeError("an SSE chunk must be a JSON object")
                if "error" in chunk:
                    log.warning("upstream for %r failed mid-stream: %s", self.name, chunk)
                    raise UpstreamError(f"upstream for '{self.name}' failed mid-stream")
                usage = chunk.get("usage") or usage
                texts, reason = _read_choices(chunk, calls, reason)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UpstreamError(f"upstream for '{self.name}' sent invalid SSE data") from exc
            for text, logprobs in texts:
                answer.append(text)
                wanted = request.params.logprobs is not None
                yield TextDelta(text, from_wire(logprobs, text) if wanted else ())
        if not done and reason is None:
            # The connection closed with neither a finish_reason nor [DONE]: a cut answer
            # must not pass for a finished one.
            raise UpstreamError(f"upstream for '{self.name}' ended the stream mid-answer")
        prompt, completion = _counts(usage, request, "".join(answer), len(answer))
        finished = Finished(_reason(reason), prompt, completion)
        if calls:
            yield ToolCalls(calls.whole())
        yield finished


def _read_choices(
    chunk: dict[str, Any], calls: _CallBuilder, reason: str | None
) -> tuple[list[tuple[str, Any]], str | None]:
    """The texts of one SSE chunk's choices with their ``logprobs`` as sent, and the
    finish reason so far; tool-call fragments go to ``calls``."""
    texts: list[tuple[str, Any]] = []
    for choice in chunk.get("choices") or []:
        if "delta" in choice:
            delta = choice["delta"] or {}
            text = delta.get("content")
            for fragment in delta.get("tool_calls") or []:
                calls.add(fragment)
        else:
            text = choice.get("text")
        if text:
            texts.append((str(text), choice.get("logprobs")))
        reason = choice.get("finish_reason") or reason
    return texts, reason


def _retry_after(response: httpx.Response) -> str | None:
    """The upstream's Retry-After (seconds or an HTTP date), if it is a sane value."""
    value = response.headers.get("retry-after", "").strip()
    return value if re.fullmatch(r"[A-Za-z0-9 ,:.+-]{1,64}", value) else None


def _counts(usage: Any, request: GenerationRequest, answer: str, chunks: int) -> tuple[int, int]:
    """The upstream's token counts; where it reports none (an upstream that ignores
    ``stream_options.include_usage``), estimates (four characters per token, and at least
    one token per streamed chunk), so limits and budgets are still charged."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    if prompt is None:
        prompt = request.estimated_tokens()
    if completion is None:
        completion = max(chunks, -(-len(answer) // 4))
    return prompt, completion


# An upstream's count above this is not a count (no context holds two billion tokens).
_MAX_COUNT = 2**31 - 1


def _count(value: object) -> int | None:
    """An upstream token count, or None where it sent none or nonsense (a negative, huge,
    fractional or non-numeric value), so the estimate is charged instead: a count the
    gateway takes at its word feeds rate limits, budgets, metrics and the audit log."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if not 0 <= value <= _MAX_COUNT:
        return None
    return int(value)


def _reason(value: object) -> Any:
    if value in ("length", "tool_calls", "content_filter"):
        return value
    return "tool_calls" if value == "function_call" else "stop"


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    """A chat message as the upstream gets it: every field the caller sent, with the text
    as the input guards left it (redacted where they redacted)."""
    content: Any = message.content
    if message.parts is not None:
        content = list(message.parts)
    elif not content and message.extra.get("tool_calls"):
        content = None  # an assistant turn that only called tools
    wire = dict(message.extra) | {"role": message.role, "content": content}
    if message.name:
        wire["name"] = message.name
    return wire


def _tool_call(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise TypeError("a tool call must be an object with a function")
    return call


class _CallBuilder:
    """Tool calls of a streamed answer, put together from their fragments: the first
    fragment of a call brings its id, type and name; the arguments come in pieces."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            raise TypeError("a tool call fragment must be an object")
        index = int(fragment.get("index", len(self._calls)))
        call = self._calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        function = fragment.get("function") or {}
        if not isinstance(function, dict):
            raise TypeError("a tool call's function must be an object")
        if function.get("name"):
            call["function"]["name"] += str(function["name"])
        if function.get("arguments"):
            call["function"]["arguments"] += str(function["arguments"])

    def whole(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._calls[i] for i in sorted(self._calls))
