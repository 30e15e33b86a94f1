"""HTTP concerns of job-service beyond the shared ones: the body size limit and answering
transient database/Redis failures with 503 + Retry-After instead of 500."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_common.problems import ConveyorError, PayloadTooLarge, ServiceUnavailable
from conveyor_common.web import problem_response

log = structlog.get_logger("job_service.http")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,  # connection lost, database locked, server shutting down
    InterfaceError,
    PoolTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)
# SQLSTATE classes of a database that is unreachable, shutting down or overloaded rather than
# of a bad statement: 08 connection exception, 53 insufficient resources, 57 operator
# intervention (admin shutdown, cannot connect now, statement timeout), 40 serialization
# failure or deadlock (a retry succeeds).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})


def is_transient(exc: BaseException) -> bool:
    """A failure of a dependency that a retry in a moment may not meet: answered with 503."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        for error in (exc.orig, exc.orig.__cause__ if exc.orig is not None else None):
            state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            if isinstance(state, str) and state[:2] in _TRANSIENT_SQLSTATE_CLASSES:
                return True
            if isinstance(error, OSError | TimeoutError):
                return True
        return False
    return isinstance(exc, TRANSIENT_ERRORS)


def install_transient_error_handlers(app: FastAPI) -> None:
    async def on_transient(request: Request, exc: Exception) -> Response:
        log.warning("http.dependency_unavailable", path=request.url.path, error=type(exc).__name__)
        error = ServiceUnavailable("A database or Redis call failed; retry shortly.")
        problem = error.to_problem(
            instance=request.url.path, request_id=getattr(request.state, "request_id", None)
        )
        return problem_response(problem, error.headers)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if is_transient(exc):
            return await on_transient(request, exc)
        # A bug, not an outage: the shared safety net logs it and answers a bare 500.
        log.exception("http.database_error", path=request.url.path, error=type(exc).__name__)
        problem = ConveyorError("An unexpected error occurred.").to_problem(
            instance=request.url.path, request_id=getattr(request.state, "request_id", None)
        )
        return problem_response(problem)

    for exc_type in TRANSIENT_ERRORS:
        app.add_exception_handler(exc_type, on_transient)
    app.add_exception_handler(DBAPIError, on_database_error)


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413, by Content-Length up front or while
    reading a body sent without one, so an oversized body is never held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(
            f"The body is over the limit of {self.max_bytes} bytes.",
            extra={"limit": self.max_bytes},
        )
        request_id = scope.get("state", {}).get("request_id")
        problem = error.to_problem(instance=scope.get("path"), request_id=request_id)
        await problem_response(problem, {"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def add_body_size_limit(app: FastAPI, max_bytes: int) -> None:
    # Innermost of the user middleware (inside request ids and metrics), so a 413 still gets
    # its X-Request-ID and is counted; `add_middleware` would put it outermost.
    app.user_middleware.append(Middleware(BodySizeLimitMiddleware, max_bytes=max_bytes))
