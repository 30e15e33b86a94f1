"""Prometheus helpers: HTTP request metrics by route template (bounded cardinality), the job
counters, and a `/metrics` route that also works in Celery's multiprocess mode."""

from __future__ import annotations

import os
import time

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "conveyor_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "conveyor_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Queue names are chosen by clients (any valid name), so as a label they are capped per process:
# the first `MAX_QUEUE_LABELS` seen keep their name, later ones are counted as `OTHER_QUEUE`
# (not a valid queue name, so it cannot be mistaken for one).
MAX_QUEUE_LABELS = 50
OTHER_QUEUE = "(other)"


class BoundedLabel:
    """One label's values, at most `limit` distinct ones; a new value past that is `other`."""

    def __init__(self, limit: int, other: str) -> None:
        self._limit = limit
        self._other = other
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return self._other


queue_label = BoundedLabel(MAX_QUEUE_LABELS, OTHER_QUEUE)

JOBS_SUBMITTED = Counter("conveyor_jobs_submitted_total", "Jobs accepted", ["task", "queue"])
JOBS_STARTED = Counter("conveyor_jobs_started_total", "Attempts started", ["task", "queue"])
JOBS_FINISHED = Counter(
    "conveyor_jobs_finished_total", "Jobs that reached a final status", ["task", "queue", "status"]
)


def registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
        return reg
    from prometheus_client import REGISTRY

    return REGISTRY


def metrics_payload() -> bytes:
    return generate_latest(registry())


def add_metrics_route(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Counts and times requests by route template, never by raw path (ids would explode the
    label set); unmatched paths are labelled `unmatched`."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    def _route(self, scope: Scope) -> str:
        # Starlette records the matched route in the scope (included routers too); answers given
        # before routing (413, 415 from middleware) fall back to matching the app's own routes.
        matched = scope.get("route")
        if matched is not None and getattr(matched, "path", None):
            return str(matched.path)
        router = scope.get("app")
        routes = getattr(getattr(router, "router", None), "routes", [])
        for route in routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self._route(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - start)
