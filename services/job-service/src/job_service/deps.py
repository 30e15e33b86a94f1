"""`Annotated` dependencies that read what the lifespan put on `app.state`. `async def` though
they never await: FastAPI runs a plain `def` dependency in its thread pool (a thread hop each,
per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from job_service.config import Settings
from job_service.jobs.cancel_keys import CancelKeys
from job_service.jobs.time_limits import TimeLimits
from job_service.outbox import OutboxRelay
from job_service.tasks.catalog import CatalogCache


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_catalog(request: Request) -> CatalogCache:
    catalog: CatalogCache = request.app.state.catalog
    return catalog


async def get_relay(request: Request) -> OutboxRelay:
    relay: OutboxRelay = request.app.state.relay
    return relay


async def get_cancel_keys(request: Request) -> CancelKeys:
    cancel_keys: CancelKeys = request.app.state.cancel_keys
    return cancel_keys


async def get_time_limits(request: Request) -> TimeLimits:
    time_limits: TimeLimits = request.app.state.time_limits
    return time_limits


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
CatalogDep = Annotated[CatalogCache, Depends(get_catalog)]
RelayDep = Annotated[OutboxRelay, Depends(get_relay)]
CancelKeysDep = Annotated[CancelKeys, Depends(get_cancel_keys)]
TimeLimitsDep = Annotated[TimeLimits, Depends(get_time_limits)]
