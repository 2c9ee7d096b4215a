"""Domain exceptions. No HTTP here: server/errors.py maps each kind to a status and the
OpenAI error shape, and the CLI turns them into a one-line message and an exit code.
"""

from __future__ import annotations


class GenaiopsError(Exception):
    """Base class. ``kind`` names the error family; ``code`` is a stable machine code."""

    kind = "internal"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ConfigError(GenaiopsError):
    kind = "config"
    code = "invalid_config"


class InvalidRequest(GenaiopsError):
    kind = "invalid_request"
    code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"

    def __init__(self, *, prompt_tokens: int, max_tokens: int | None, context_length: int):
        if max_tokens is None:
            message = (
                f"This model's maximum context length is {context_length} tokens. However, "
                f"your prompt has {prompt_tokens} tokens, which leaves no room for a completion."
            )
        else:
            message = (
                f"This model's maximum context length is {context_length} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
                f"{max_tokens} for the completion). Reduce the prompt or max_tokens."
            )
        super().__init__(message, param="messages")
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length


class ModelNotFound(GenaiopsError):
    kind = "not_found"
    code = "model_not_found"

    def __init__(self, model: str, available: list[str]):
        shown = ", ".join(available) if available else "none"
        super().__init__(
            f"The model '{model}' does not exist. Available models: {shown}.", param="model"
        )


class NotFound(GenaiopsError):
    kind = "not_found"
    code = "not_found"


class PayloadTooLarge(GenaiopsError):
    kind = "too_large"
    code = "payload_too_large"


class Overloaded(GenaiopsError):
    """The model's queue is full; the client should retry after ``retry_after`` seconds."""

    kind = "overloaded"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class ModelNotReady(GenaiopsError):
    kind = "unavailable"
    code = "model_not_ready"


class StoreUnavailable(GenaiopsError):
    """A database the platform depends on (the pgvector store) cannot be reached now."""

    kind = "unavailable"
    code = "store_unavailable"


class UpstreamError(GenaiopsError):
    """A remote model failed (connection refused, 5xx, malformed answer)."""

    kind = "upstream"
    code = "upstream_error"


class UpstreamHTTPError(GenaiopsError):
    """A remote model refused the caller's request (400, 413, 422, 429), passed through
    with its status and, for 429, the upstream's ``Retry-After``."""

    kind = "upstream_status"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        retry_after: str | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.status = status
        self.error_type = error_type
        self.retry_after = retry_after


class GenerationTimeout(GenaiopsError):
    kind = "timeout"
    code = "timeout"


class AuthenticationError(GenaiopsError):
    """Missing, malformed, unknown, expired or revoked credentials. ``key_id`` and
    ``tenant`` name the existing key a refused credential pointed at (a wrong secret, a
    revoked or expired key), for the audit record its tenant reads; never shown to the
    caller."""

    kind = "unauthenticated"
    code = "invalid_api_key"
    key_id: str | None = None
    tenant: str | None = None


class PermissionDenied(GenaiopsError):
    """Valid credentials whose role, tenant or model allowlist does not cover the request."""

    kind = "forbidden"
    code = "permission_denied"


class RateLimited(Overloaded):
    """A request or token rate, or a token budget, is exhausted for a key or tenant.

    ``headers`` carries the ``x-ratelimit-*`` values for the response.
    """

    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        code: str = "rate_limit_exceeded",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        self.code = code
        self.headers = headers or {}


class ContentBlocked(InvalidRequest):
    """A guardrail policy blocked the request or the answer (OpenAI's ``content_filter``)."""

    code = "content_filter"


class StructuredOutputError(GenaiopsError):
    """The model's answer did not validate against the requested JSON schema, twice."""

    kind = "upstream"
    code = "invalid_structured_output"
