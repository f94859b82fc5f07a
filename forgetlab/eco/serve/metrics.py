"""Prometheus metrics of the ECO server (``GET /metrics``), through ``prometheus-client``.

One registry per app (never the process-global one, so several servers in one process stay apart):

- ``forgetlab_requests_total{endpoint, status}``: answered HTTP requests by route and status code;
- ``forgetlab_request_duration_seconds{endpoint}``: time to the last byte of the answer (streams included);
- ``forgetlab_prompts_total`` and ``forgetlab_flagged_prompts_total``: prompts classified, and flagged by the
  guard's flag rule;
- ``forgetlab_prompt_tokens_total``, ``forgetlab_completion_tokens_total``;
- ``forgetlab_batch_duration_seconds``: one backend batch (classify, generate, score);
- ``forgetlab_queue_depth`` (requests waiting for the batcher) and ``forgetlab_requests_in_flight`` (admitted,
  not yet answered), read when scraped.

:class:`MetricsMiddleware` is plain ASGI, so a streamed answer is timed to its last chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/openapi.json")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServerMetrics:
    """The server's metrics in their own registry."""

    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("forgetlab_requests", "HTTP requests answered, by route and status code.",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("forgetlab_request_duration_seconds", "Time to the last byte of the answer.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompts = Counter("forgetlab_prompts", "Prompts classified by the guard.", registry=r)
        self.flagged = Counter("forgetlab_flagged_prompts", "Prompts the guard's flag rule flagged.", registry=r)
        self.prompt_tokens = Counter("forgetlab_prompt_tokens", "Prompt tokens of answered requests.", registry=r)
        self.completion_tokens = Counter("forgetlab_completion_tokens", "Generated tokens.", registry=r)
        self.batch = Histogram("forgetlab_batch_duration_seconds", "One backend batch: classify, generate, score.",
                               buckets=LATENCY_BUCKETS, registry=r)
        Gauge("forgetlab_queue_depth", "Requests waiting for the batcher.", registry=r).set_function(queue_depth)
        Gauge("forgetlab_requests_in_flight", "Requests admitted and not yet answered.",
              registry=r).set_function(in_flight)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_flags(self, flags: list[bool]) -> None:
        self.prompts.inc(len(flags))
        self.flagged.inc(sum(bool(f) for f in flags))


class MetricsMiddleware:
    """ASGI middleware: counts every HTTP answer by route and status, timed to its last body chunk."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state = {"status": 500, "done": False}

        async def timed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body") and not state["done"]:
                state["done"] = True
                self.metrics.observe_request(scope["path"], state["status"], time.perf_counter() - t0)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not state["done"]:  # an exception, or a client that went away mid-stream
                self.metrics.observe_request(scope["path"], state["status"], time.perf_counter() - t0)
