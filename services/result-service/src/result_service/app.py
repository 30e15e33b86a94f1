"""create_app + lifespan: the Redis client lives on `app.state` for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from redis.asyncio import Redis

from conveyor_common.web import ReadinessCheck, create_service_app
from result_service.config import SERVICE_NAME, Settings
from result_service.results.endpoints import router as results_router


def create_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_dsn(),
        **settings.redis_client_kwargs(
            client_name=f"conveyor-{SERVICE_NAME}", health_check_interval=30
        ),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    redis = create_redis(settings)
    app.state.redis = redis
    try:
        yield
    finally:
        await redis.aclose()


def _readiness(request: Request) -> Mapping[str, ReadinessCheck]:
    redis: Redis = request.app.state.redis
    return {"redis": redis.ping}


def create_app(settings: Settings) -> FastAPI:
    app = create_service_app(
        SERVICE_NAME,
        title="Conveyor result-service",
        description="Internal: reads job results from the Celery result backend.",
        lifespan=lifespan,
        readiness=_readiness,
    )
    app.state.settings = settings
    app.include_router(results_router)
    return app
