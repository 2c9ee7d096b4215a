"""Prometheus metrics, all prefixed ``genaiops_``, in a registry owned by the app (no
process-global state, so two apps in one process, as in tests, do not collide).

Queue depth, in-flight requests and readiness are read from the schedulers when Prometheus
scrapes, instead of being updated on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from genaiops import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _SchedulerCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, dict[str, Any]]]):
        self._status = status

    def collect(self) -> Iterator[Any]:
        queue = GaugeMetricFamily(
            "genaiops_queue_depth", "Requests waiting in a model's queue.", labels=["model"]
        )
        capacity = GaugeMetricFamily(
            "genaiops_queue_capacity",
            "Places in a model's queue (queue_depth counts the taken ones; once they are all "
            "taken new requests get 429).",
            labels=["model"],
        )
        inflight = GaugeMetricFamily(
            "genaiops_inflight_requests", "Requests a model is generating now.", labels=["model"]
        )
        ready = GaugeMetricFamily(
            "genaiops_model_ready", "1 when the model is loaded and serving.", labels=["model"]
        )
        for model, stats in self._status().items():
            queue.add_metric([model], stats["queued"])
            capacity.add_metric([model], stats["queue_size"])
            inflight.add_metric([model], stats["running"])
            ready.add_metric([model], 1.0 if stats["state"] == "ready" else 0.0)
        yield from (queue, capacity, inflight, ready)
        info = InfoMetricFamily("genaiops_build", "genaiops version.")
        info.add_metric([], {"version": __version__})
        yield info

    def describe(self) -> Iterator[Any]:
        return iter(())


class Metrics:
    def __init__(self, scheduler_status: Callable[[], dict[str, dict[str, Any]]] | None = None):
        # The *_created series double the exposition and no dashboard here uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "genaiops_requests",
            "Inference requests by model, HTTP status and tenant.",
            ["model", "status", "tenant"],
            registry=r,
        )
        self.latency = Histogram(
            "genaiops_request_duration_seconds",
            "Inference request latency, to the last byte.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "genaiops_time_to_first_token_seconds",
            "Time from request to the first generated token.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "genaiops_prompt_tokens", "Prompt tokens processed.", ["model", "tenant"], registry=r
        )
        self.completion_tokens = Counter(
            "genaiops_completion_tokens", "Tokens generated.", ["model", "tenant"], registry=r
        )
        self.rate_limited = Counter(
            "genaiops_rate_limit_rejections",
            "Requests refused by a rate limit or budget.",
            ["tenant", "limit"],
            registry=r,
        )
        self.auth_failures = Counter(
            "genaiops_auth_failures",
            "Requests refused for missing or invalid credentials.",
            ["reason"],
            registry=r,
        )
        self.guardrail_events = Counter(
            "genaiops_guardrail_events",
            "Guardrail findings that a policy acted on, by guard and action.",
            ["guard", "action"],
            registry=r,
        )
        self.http_requests = Counter(
            "genaiops_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        if scheduler_status is not None:
            r.register(_SchedulerCollector(scheduler_status))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
