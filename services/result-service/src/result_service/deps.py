"""Request dependencies: the Redis client and repository the lifespan created."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from conveyor_common.redis_keys import RedisKeys
from result_service.config import Settings
from result_service.results.repository import ResultRepository


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def get_repository(request: Request) -> ResultRepository:
    return ResultRepository(
        get_redis(request), RedisKeys(get_settings_dep(request).redis_namespace)
    )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RepositoryDep = Annotated[ResultRepository, Depends(get_repository)]
