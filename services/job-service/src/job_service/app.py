"""The job-service app: `create_app(settings)`; the lifespan builds the engine, Redis client,
catalog cache and background loops, and tears them down in reverse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text

from conveyor_common import limits
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.web import ReadinessCheck, create_service_app
from job_service.api_keys.endpoints import router as auth_router
from job_service.background import BackgroundLoop
from job_service.config import CONNECTION_NAME, SERVICE_NAME, Settings
from job_service.db import create_engine, create_sessionmaker
from job_service.events import EventReader
from job_service.http import add_body_size_limit, install_transient_error_handlers
from job_service.jobs.endpoints import router as jobs_router
from job_service.jobs.state_machine import BackoffPolicy
from job_service.outbox import OutboxRelay
from job_service.scheduler import Promoter
from job_service.tasks.catalog import CatalogCache
from job_service.tasks.endpoints import router as tasks_router

log = structlog.get_logger("job_service.app")


def create_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        client_name=CONNECTION_NAME,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        health_check_interval=30,
        # A pooled connection that died with a Redis restart is replaced on the spot instead of
        # failing one request or round. (A retried LPUSH may publish twice; the worker's attempt
        # fence makes the copy a skip.)
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    keys = RedisKeys(settings.redis_namespace)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    redis = create_redis(settings)

    relay = OutboxRelay(
        sessionmaker,
        redis,
        keys,
        batch_size=settings.relay_batch_size,
        sweep_seconds=settings.relay_sweep_seconds,
        backoff_max_seconds=settings.relay_backoff_max_seconds,
        time_limit_grace_seconds=settings.time_limit_grace_seconds,
    )
    reader = EventReader(
        sessionmaker,
        redis,
        keys,
        batch_size=settings.events_batch_size,
        block_ms=settings.events_block_ms,
        claim_idle_ms=settings.events_claim_idle_ms,
        claim_interval_seconds=settings.events_claim_interval_seconds,
        backoff_max_seconds=settings.events_backoff_max_seconds,
        retry_backoff=BackoffPolicy(
            settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds
        ),
    )
    promoter = Promoter(
        sessionmaker,
        on_promoted=relay.wake,
        interval_seconds=settings.promoter_interval_seconds,
        batch_size=settings.promoter_batch_size,
    )
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.redis = redis
    app.state.keys = keys
    app.state.catalog = CatalogCache(
        redis, keys.catalog, ttl_seconds=settings.catalog_cache_seconds
    )
    app.state.relay = relay
    app.state.reader = reader
    app.state.promoter = promoter

    loops: list[BackgroundLoop] = [relay, reader, promoter] if settings.background_tasks else []
    tasks = [asyncio.create_task(loop.run(), name=loop.name) for loop in loops]
    log.info("job_service.started", background_tasks=settings.background_tasks)
    try:
        yield
    finally:
        for loop in loops:
            loop.request_stop()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=settings.shutdown_grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        await engine.dispose()
        log.info("job_service.stopped")


def _readiness(request: Request) -> Mapping[str, ReadinessCheck]:
    async def database() -> None:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def redis() -> Any:
        return await request.app.state.redis.ping()

    return {"database": database, "redis": redis}


def create_app(settings: Settings) -> FastAPI:
    app = create_service_app(
        SERVICE_NAME,
        title="Conveyor job-service",
        lifespan=lifespan,
        readiness=_readiness,
        description="Internal API: jobs, the task catalog and API-key verification.",
    )
    app.state.settings = settings
    install_transient_error_handlers(app)
    add_body_size_limit(app, limits.MAX_BODY_BYTES)
    app.include_router(jobs_router)
    app.include_router(tasks_router)
    app.include_router(auth_router)
    return app
