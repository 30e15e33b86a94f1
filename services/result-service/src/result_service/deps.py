"""Request dependencies: the Redis client and repository the lifespan created. `async def`
though they never await: FastAPI runs a plain `def` dependency in its thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from conveyor_common.redis_keys import RedisKeys
from result_service.config import Settings
from result_service.results.repository import ResultRepository


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_repository(request: Request) -> ResultRepository:
    return ResultRepository(
        request.app.state.redis, RedisKeys(request.app.state.settings.redis_namespace)
    )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RepositoryDep = Annotated[ResultRepository, Depends(get_repository)]
