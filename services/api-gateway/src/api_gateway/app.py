"""create_app + lifespan: pooled upstream clients and the key verifier live on `app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from api_gateway.auth import KeyVerifier
from api_gateway.config import SERVICE_NAME, Settings
from api_gateway.jobs.endpoints import router as jobs_router
from api_gateway.jobs.service import JobsGateway
from api_gateway.middleware import BodySizeLimitMiddleware, JsonContentTypeMiddleware
from api_gateway.relay import install_upstream_problem_handler
from api_gateway.tasks.endpoints import router as tasks_router
from api_gateway.upstream import Upstream, make_http_client
from conveyor_common import limits
from conveyor_common.web import ReadinessCheck, create_service_app

API_PREFIX = "/v1"

DESCRIPTION = """\
Submit background jobs and read their status and results.

Authenticate with an API key: `Authorization: Bearer cvk_...`. Errors are
`application/problem+json` (RFC 9457) with a stable `type`; every response carries
`X-Request-ID`.
"""


def _upstream(settings: Settings, name: str, base_url: str) -> Upstream:
    client = make_http_client(
        base_url,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        write_timeout=settings.upstream_write_timeout,
        pool_timeout=settings.upstream_pool_timeout,
        max_connections=settings.upstream_max_connections,
        max_keepalive=settings.upstream_max_keepalive,
    )
    return Upstream(
        name,
        client,
        internal_token=settings.internal_token,
        retry_after_seconds=settings.retry_after_seconds,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    job_service = _upstream(settings, "job-service", settings.job_service_url)
    result_service = _upstream(settings, "result-service", settings.result_service_url)
    app.state.job_service = job_service
    app.state.result_service = result_service
    app.state.jobs = JobsGateway(job_service, result_service)
    app.state.key_verifier = KeyVerifier(
        job_service,
        ttl_seconds=settings.auth_cache_ttl_seconds,
        max_entries=settings.auth_cache_max_entries,
    )
    try:
        yield
    finally:
        await job_service.client.aclose()
        await result_service.client.aclose()


def _health_check(upstream: Upstream, timeout: float) -> ReadinessCheck:
    async def check() -> None:
        response = await upstream.client.get("/healthz", timeout=timeout)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{upstream.name} /healthz answered {response.status_code}",
                request=response.request,
                response=response,
            )

    return check


def _readiness(request: Request) -> Mapping[str, ReadinessCheck]:
    settings: Settings = request.app.state.settings
    return {
        upstream.name: _health_check(upstream, settings.readiness_timeout)
        for upstream in (request.app.state.job_service, request.app.state.result_service)
    }


def create_app(settings: Settings) -> FastAPI:
    app = create_service_app(
        SERVICE_NAME,
        title="Conveyor API",
        description=DESCRIPTION,
        lifespan=lifespan,
        readiness=_readiness,
    )
    app.state.settings = settings
    install_upstream_problem_handler(app)
    # Appended, so they run inside the request-id and metrics middleware that
    # create_service_app installed: their 413/415 answers carry the request id and are counted.
    app.user_middleware.append(Middleware(JsonContentTypeMiddleware, path_prefix=API_PREFIX))
    app.user_middleware.append(
        Middleware(BodySizeLimitMiddleware, max_body_bytes=limits.MAX_BODY_BYTES)
    )
    app.include_router(jobs_router)
    app.include_router(tasks_router)
    return app
