"""create_app + lifespan: pooled upstream clients, the key and token verifiers, and the rate
limiter's Redis client live on `app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.middleware import Middleware

from api_gateway.api_keys.endpoints import router as api_keys_router
from api_gateway.auth import JwtVerifier, KeyVerifier
from api_gateway.auth.jwks import (
    JwksCache,
    JwksLoader,
    loader_from_setting,
    url_loader,
)
from api_gateway.auth.revocations import KeyRevocations
from api_gateway.config import SERVICE_NAME, Settings, parse_rate_limit
from api_gateway.dead_letters.endpoints import router as dead_letters_router
from api_gateway.jobs.coalescer import SubmitCoalescer
from api_gateway.jobs.endpoints import router as jobs_router
from api_gateway.jobs.service import JobsGateway
from api_gateway.middleware import (
    BodySizeLimitMiddleware,
    JsonContentTypeMiddleware,
    ProblemRedactionMiddleware,
)
from api_gateway.ratelimit import RateLimitHeadersMiddleware, TenantRateLimiter, create_limiter
from api_gateway.relay import install_upstream_problem_handler
from api_gateway.tasks.endpoints import router as tasks_router
from api_gateway.upstream import Upstream, UpstreamTimeouts, make_http_session
from conveyor_common import limits
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.web import ReadinessCheck, create_service_app

CONNECTION_NAME = f"conveyor-{SERVICE_NAME}"

API_PREFIX = "/v1"

DESCRIPTION = """\
Submit background jobs and read their status and results.

Authenticate with an API key (`Authorization: Bearer cvk_...`) or, where the installation
trusts an identity provider, a JWT it issued. Each tenant's requests are rate limited: answers
carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, and `429` carries
`Retry-After`. Errors are `application/problem+json` (RFC 9457) with a stable `type`; every
response carries `X-Request-ID`.
"""


def _upstream(settings: Settings, name: str, base_url: str) -> Upstream:
    session = make_http_session(max_connections=settings.upstream_max_connections)
    timeouts = UpstreamTimeouts(
        connect=settings.upstream_connect_timeout,
        read=settings.upstream_read_timeout,
        pool=settings.upstream_pool_timeout,
    )
    return Upstream(
        name,
        base_url,
        session,
        timeouts=timeouts,
        internal_token=settings.internal_token,
        retry_after_seconds=settings.retry_after_seconds,
    )


async def _jwt_verifier(settings: Settings, stack: AsyncExitStack) -> JwtVerifier | None:
    if not settings.jwt_enabled or not settings.jwt_issuer or not settings.jwt_audience:
        return None
    load: JwksLoader
    if settings.jwt_jwks_url:
        client = httpx.AsyncClient(timeout=settings.jwt_jwks_timeout, follow_redirects=False)
        stack.push_async_callback(client.aclose)
        load = url_loader(client, settings.jwt_jwks_url)
    else:
        load = loader_from_setting(settings.jwt_jwks or "")
    cache = JwksCache(
        load,
        max_age=settings.jwt_jwks_cache_seconds,
        min_refresh_interval=settings.jwt_jwks_min_refresh_seconds,
    )
    if not settings.jwt_jwks_url:
        # A configured key set that cannot be read is a deployment error: fail at start-up.
        await cache.prime()
    return JwtVerifier(
        cache,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithms=settings.jwt_algorithms,
        tenant_claim=settings.jwt_tenant_claim,
        scopes_claims=settings.jwt_scopes_claim,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def _rate_limiter(settings: Settings, stack: AsyncExitStack) -> TenantRateLimiter | None:
    if not settings.rate_limit_enabled:
        return None
    timeout = settings.rate_limit_redis_timeout
    redis = Redis.from_url(
        settings.redis_dsn(),
        **settings.redis_client_kwargs(
            client_name=CONNECTION_NAME,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            # One quick retry replaces a pooled connection that died with a Redis restart;
            # more, with backoff, would hold requests up exactly when Redis is down.
            retry=Retry(NoBackoff(), 1),
        ),
    )
    stack.push_async_callback(redis.aclose)
    limiter = create_limiter(
        redis,
        strategy=settings.rate_limit_strategy,
        key_prefix=f"{settings.redis_namespace}:ratelimit",
    )
    return TenantRateLimiter(
        limiter,
        default=parse_rate_limit(settings.rate_limit),
        overrides={
            tenant: parse_rate_limit(text) for tenant, text in settings.rate_limit_overrides.items()
        },
        retry_seconds=settings.rate_limit_retry_seconds,
    )


def _key_revocations(
    settings: Settings, verifier: KeyVerifier, stack: AsyncExitStack
) -> KeyRevocations:
    """Its own Redis client: the subscription holds a connection for good, and its timeouts are
    not the rate limiter's (which must fail within a fraction of a second)."""
    redis = Redis.from_url(
        settings.redis_dsn(),
        **settings.redis_client_kwargs(
            client_name=f"{CONNECTION_NAME}-revocations",
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
            health_check_interval=15,
            retry=Retry(NoBackoff(), 1),
        ),
    )
    stack.push_async_callback(redis.aclose)
    revocations = KeyRevocations(
        redis, RedisKeys(settings.redis_namespace).api_key_revocations, verifier
    )
    revocations.start()
    stack.push_async_callback(revocations.stop)
    return revocations


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        job_service = _upstream(settings, "job-service", settings.job_service_url)
        stack.push_async_callback(job_service.aclose)
        result_service = _upstream(settings, "result-service", settings.result_service_url)
        stack.push_async_callback(result_service.aclose)
        app.state.job_service = job_service
        app.state.result_service = result_service
        coalescer = None
        if settings.submit_coalescing_calls:
            coalescer = SubmitCoalescer(
                job_service, calls_per_tenant=settings.submit_coalescing_calls
            )
            # Pushed after the clients, so it runs before they close: calls in flight finish.
            stack.push_async_callback(coalescer.aclose)
        app.state.jobs = JobsGateway(job_service, result_service, coalescer)
        app.state.key_verifier = KeyVerifier(
            job_service,
            ttl_seconds=settings.auth_cache_ttl_seconds,
            max_entries=settings.auth_cache_max_entries,
        )
        app.state.key_revocations = _key_revocations(settings, app.state.key_verifier, stack)
        app.state.jwt_verifier = await _jwt_verifier(settings, stack)
        app.state.rate_limiter = _rate_limiter(settings, stack)
        yield


def _health_check(upstream: Upstream, timeout: float) -> ReadinessCheck:
    async def check() -> None:
        await upstream.health(timeout)

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
    # Outermost first: rate-limit headers and problem redaction see every answer, the body
    # guards' included.
    app.user_middleware.append(Middleware(RateLimitHeadersMiddleware))
    app.user_middleware.append(Middleware(ProblemRedactionMiddleware))
    app.user_middleware.append(Middleware(JsonContentTypeMiddleware, path_prefix=API_PREFIX))
    app.user_middleware.append(
        Middleware(BodySizeLimitMiddleware, max_body_bytes=limits.MAX_BODY_BYTES)
    )
    app.include_router(jobs_router)
    app.include_router(tasks_router)
    app.include_router(dead_letters_router)
    app.include_router(api_keys_router)
    return app
