"""RequestContext: what one HTTP request accumulates on its way through the pipeline
(who asked, which model, token counts, time to first token, extra response headers), read
at the end by the record stage (metrics, access log, usage, audit)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genaiops.security.principal import Principal


@dataclass
class RequestContext:
    request_id: str
    method: str = "GET"
    path: str = "/"
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    # Set once the request reaches the pipeline: it is an inference request.
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    # A failure reported inside an already-started stream (status line already sent), and
    # the status it stands for (the audit records that, not the 200 already sent).
    stream_error: str | None = None
    stream_status: int | None = None
    # The generation stopped because the client went away.
    cancelled: bool = False
    # Set when a rate limit or budget refused the request ("rpm", "tpm", "budget").
    rate_limited: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Guardrail findings a policy acted on: {"stage", "guard", "action", "kinds"}; no text.
    guardrail_events: list[dict[str, Any]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
