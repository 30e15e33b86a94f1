"""FastAPI building blocks every service uses: problem handlers, request ids, health routes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_common.gc_pauses import freeze_startup_objects
from conveyor_common.problems import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_PREFIX,
    ConveyorError,
    FieldError,
    InvalidRequest,
    MalformedBody,
    Problem,
)

REQUEST_ID_HEADER = "X-Request-ID"
# Deduplicates submissions (per tenant); the gateway passes it on to job-service as it came.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_log = structlog.get_logger("conveyor.web")


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    # pydantic's error carries the offending `input`; it is dropped on purpose so a secret sent
    # in the wrong place is never echoed back.
    return [
        FieldError(field=_field_path(tuple(e["loc"])), reason=str(e["msg"])) for e in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_conveyor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConveyorError)
        problem = exc.to_problem(instance=request.url.path, request_id=_request_id(request))
        return problem_response(problem, exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            err: ConveyorError = MalformedBody(
                "The body could not be parsed as JSON.", errors=errors
            )
        else:
            err = InvalidRequest("; ".join(f"{e.field}: {e.reason}" for e in errors), errors=errors)
        return await on_conveyor_error(request, err)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        problem = Problem(
            type=PROBLEM_TYPE_PREFIX + slug,
            title=str(exc.detail),
            status=exc.status_code,
            instance=request.url.path,
            request_id=_request_id(request),
        )
        return problem_response(problem, exc.headers)

    async def on_unexpected(request: Request, _exc: Exception) -> Response:
        # The safety net: log the trace server-side, tell the client nothing about internals.
        _log.exception("http.unhandled_error", path=request.url.path)
        problem = ConveyorError("An unexpected error occurred.").to_problem(
            instance=request.url.path, request_id=_request_id(request)
        )
        return problem_response(problem)

    app.add_exception_handler(ConveyorError, on_conveyor_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


class RequestIdMiddleware:
    """Accepts `X-Request-ID` (or makes one), binds it to every log line of the request and
    echoes it on the response. Pure ASGI so it adds no per-request task."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            # Bounded and printable, so a client can't inject log lines or huge ids.
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return None


ReadinessCheck = Callable[[], Awaitable[Any]]

# Probes and scrapes arrive every few seconds and say nothing about jobs: no spans for them.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# FastAPI's own OpenTelemetry support makes each request's server span (named by route template,
# the caller's `traceparent` as parent) once conveyor_common.tracing installed a provider; until
# then it does nothing. Its metrics and log records stay off: Prometheus and structlog have them,
# and its log records would carry exception messages we don't vet.
TELEMETRY: TelemetryConfig = {
    "metrics": False,
    "logs": False,
    "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS,
}


def add_health_routes(
    app: FastAPI, checks: Callable[[Request], Mapping[str, ReadinessCheck]], *, timeout: float = 2.0
) -> None:
    """`/healthz` never touches a dependency; `/readyz` runs every check with a short timeout."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        for name, check in checks(request).items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready
                results[name] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not-ready", "checks": results},
            status_code=200 if ready else 503,
        )


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def frozen_after_startup(lifespan: Lifespan) -> Lifespan:
    """`lifespan`, then the start-up objects frozen out of the collector's full collections
    (`gc_pauses`) before the first request."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            freeze_startup_objects()
            yield

    return run


def create_service_app(
    service: str,
    *,
    title: str,
    lifespan: Lifespan,
    readiness: Callable[[Request], Mapping[str, ReadinessCheck]],
    version: str = "0.1.0",
    openapi: bool = True,
    description: str = "",
) -> FastAPI:
    """A FastAPI app with what every Conveyor service has: problem+json errors, request ids,
    HTTP metrics, `/healthz`, `/readyz` and `/metrics`."""
    from conveyor_common.metrics import HttpMetricsMiddleware, add_metrics_route

    app = FastAPI(
        title=title,
        version=version,
        lifespan=frozen_after_startup(lifespan),
        description=description,
        telemetry=TELEMETRY,
        openapi_url="/openapi.json" if openapi else None,
        docs_url="/docs" if openapi else None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(HttpMetricsMiddleware, service=service)
    app.add_middleware(RequestIdMiddleware)
    add_health_routes(app, readiness)
    add_metrics_route(app)
    return app
