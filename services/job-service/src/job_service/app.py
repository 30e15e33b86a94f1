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
from job_service.db import autocommit_sessionmaker, create_engine, create_sessionmaker
from job_service.dead_letters.endpoints import router as dead_letters_router
from job_service.events import EventApplier, EventReader
from job_service.gauges import GaugeCollector
from job_service.http import add_body_size_limit, install_transient_error_handlers
from job_service.jobs.cancel_keys import CancelKeys
from job_service.jobs.endpoints import router as jobs_router
from job_service.jobs.state_cache import StateCache
from job_service.outbox import OutboxRelay
from job_service.reconciler import Reconciler
from job_service.scheduler import Promoter
from job_service.tasks.catalog import CatalogCache, CatalogRefresher
from job_service.tasks.endpoints import router as tasks_router

log = structlog.get_logger("job_service.app")


def create_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_dsn(),
        **settings.redis_client_kwargs(
            client_name=CONNECTION_NAME,
            health_check_interval=30,
            # A pooled connection that died with a Redis restart is replaced on the spot instead
            # of failing one request or round. (A retried LPUSH may publish twice; the worker's
            # attempt fence makes the copy a skip.)
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        ),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    keys = RedisKeys(settings.redis_namespace)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    redis = create_redis(settings)
    time_limits = settings.time_limits
    if time_limits.requested_grace_seconds is not None:
        log.warning(
            "job_service.time_limit_grace_shortened",
            requested=time_limits.requested_grace_seconds,
            effective=time_limits.grace_seconds,
            visibility_timeout=time_limits.visibility_timeout_seconds,
        )

    # The jobs in flight as this replica last wrote them: the relay fills it, the event applier
    # decides from it without a read (jobs/state_cache.py).
    state_cache = StateCache()
    relay = OutboxRelay(
        sessionmaker,
        redis,
        keys,
        batch_size=settings.relay_batch_size,
        sweep_seconds=settings.relay_sweep_seconds,
        backoff_max_seconds=settings.relay_backoff_max_seconds,
        time_limits=time_limits,
        state_cache=state_cache,
    )
    applier = EventApplier(sessionmaker, state_cache=state_cache)
    reader = EventReader(
        sessionmaker,
        redis,
        keys,
        batch_size=settings.events_batch_size,
        block_ms=settings.events_block_ms,
        linger_ms=settings.events_linger_ms,
        claim_idle_ms=settings.events_claim_idle_ms,
        claim_interval_seconds=settings.events_claim_interval_seconds,
        backoff_max_seconds=settings.events_backoff_max_seconds,
        applier=applier,
    )
    promoter = Promoter(
        sessionmaker,
        on_promoted=relay.wake,
        interval_seconds=settings.promoter_interval_seconds,
        batch_size=settings.promoter_batch_size,
    )
    reconciler = Reconciler(
        sessionmaker,
        redis,
        keys,
        applier=applier,
        on_republished=relay.wake,
        interval_seconds=settings.reconcile_interval_seconds,
        queued_republish_seconds=settings.queued_republish_seconds,
        lease_ttl_seconds=settings.lease_ttl_seconds,
        batch_size=settings.reconcile_batch_size,
    )
    gauges = GaugeCollector(
        sessionmaker, redis, keys, interval_seconds=settings.gauges_interval_seconds
    )
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.autocommit_sessionmaker = autocommit_sessionmaker(sessionmaker)
    app.state.redis = redis
    app.state.keys = keys
    catalog = CatalogCache(redis, keys.catalog, ttl_seconds=settings.catalog_cache_seconds)
    app.state.catalog = catalog
    app.state.applier = applier
    app.state.state_cache = state_cache
    app.state.time_limits = time_limits
    app.state.cancel_keys = CancelKeys(redis, keys, ttl_seconds=time_limits.marker_ttl_seconds)
    app.state.relay = relay
    app.state.reader = reader
    app.state.promoter = promoter
    app.state.reconciler = reconciler
    app.state.gauges = gauges

    refresher = CatalogRefresher(catalog, interval_seconds=max(settings.catalog_cache_seconds, 1.0))
    loops: list[BackgroundLoop] = (
        [relay, reader, promoter, reconciler, gauges, refresher]
        if settings.background_tasks
        else []
    )
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
        description="Internal API: jobs, dead letters, the task catalog and API keys.",
    )
    app.state.settings = settings
    install_transient_error_handlers(app)
    add_body_size_limit(app, limits.MAX_BODY_BYTES)
    app.include_router(jobs_router)
    app.include_router(dead_letters_router)
    app.include_router(tasks_router)
    app.include_router(auth_router)
    return app
