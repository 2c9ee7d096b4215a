"""The record stage: once a response is complete, one RequestContext becomes Prometheus
samples, one access-log line, and (for inference requests) a usage increment and an audit
record. Everything here is in-memory work; the database writes happen in the security
recorder's background thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from genaiops.gateway.context import RequestContext
from genaiops.monitoring.metrics import Metrics

if TYPE_CHECKING:
    from genaiops.security.service import SecurityService

access = logging.getLogger("genaiops.access")

# The status recorded for a generation the client abandoned (nginx's convention).
CLIENT_CLOSED = 499
# Inference endpoints: a request to one is audited even when it failed before a model was
# chosen (an invalid or oversized body), with model "-".
INFERENCE_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/generate"}
)


class RequestRecorder:
    def __init__(self, metrics: Metrics, security: SecurityService | None):
        self.metrics = metrics
        self.security = security

    def __call__(self, ctx: RequestContext, status: int, scope: dict[str, Any]) -> None:
        latency = ctx.elapsed()
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.http_requests.labels(ctx.method, template, str(status)).inc()
        principal = ctx.principal
        tenant = principal.tenant if principal is not None else "-"
        if ctx.model is None and ctx.path in INFERENCE_PATHS and principal is not None:
            ctx.model = "-"
        if ctx.model is not None:
            if ctx.stream_status is not None and status < 400:
                status = ctx.stream_status  # what the in-band error of a stream stood for
            elif ctx.stream_error is not None and status < 400:
                status = 500
            elif ctx.cancelled and status < 400:
                status = CLIENT_CLOSED
            self._inference(ctx, status, latency, tenant)
        for event in ctx.guardrail_events:
            self.metrics.guardrail_events.labels(event["guard"], event["action"]).inc()
            if self.security is not None:
                self.security.record_event(
                    f"guardrail.{event['action']}",
                    principal=principal,
                    request_id=ctx.request_id,
                    status=status,
                    detail=event | {"model": ctx.model},
                )
        if status == 403 and self.security is not None:
            # A valid credential asking for what its role, tenant or model list does not
            # allow: audited like a refused credential, under the caller's tenant.
            self.security.record_event(
                "auth.denied",
                principal=principal,
                request_id=ctx.request_id,
                status=status,
                detail={"method": ctx.method, "path": ctx.path[:200], "model": ctx.model},
            )
        if ctx.rate_limited is not None:
            kind = ctx.rate_limited.removesuffix("_exceeded")
            self.metrics.rate_limited.labels(tenant, kind).inc()
        fields: dict[str, Any] = {
            "request_id": ctx.request_id,
            "method": ctx.method,
            "path": ctx.path,
            "status": status,
            "latency_ms": round(latency * 1000, 2),
            "tenant": principal.tenant if principal is not None else None,
            "actor": principal.actor if principal is not None else None,
        }
        if ctx.model is not None:
            fields |= {
                "model": ctx.model,
                "prompt_tokens": ctx.prompt_tokens,
                "completion_tokens": ctx.completion_tokens,
                "ttft_ms": round(ctx.ttft_s * 1000, 2) if ctx.ttft_s is not None else None,
            }
        access.info("request", extra=fields)

    def _inference(self, ctx: RequestContext, status: int, latency: float, tenant: str) -> None:
        model = ctx.model or "-"
        m = self.metrics
        try:
            m.requests.labels(model, str(status), tenant).inc()
            m.latency.labels(model).observe(latency)
            if ctx.ttft_s is not None:
                m.ttft.labels(model).observe(ctx.ttft_s)
            if ctx.prompt_tokens:
                m.prompt_tokens.labels(model, tenant).inc(ctx.prompt_tokens)
            if ctx.completion_tokens:
                m.completion_tokens.labels(model, tenant).inc(ctx.completion_tokens)
        except ValueError as exc:  # a count a counter refuses never costs the audit record
            access.error("metrics of request %s not recorded: %s", ctx.request_id, exc)
        if self.security is not None and ctx.principal is not None:
            detail = {"path": ctx.path}
            if ctx.stream_error:
                detail["error"] = ctx.stream_error
            if ctx.rate_limited:
                detail["rate_limited"] = ctx.rate_limited
            self.security.record_inference(
                ctx.principal,
                model=model,
                status=status,
                request_id=ctx.request_id,
                latency_s=latency,
                prompt_tokens=ctx.prompt_tokens,
                completion_tokens=ctx.completion_tokens,
                detail=detail,
            )
