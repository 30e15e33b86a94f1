"""result-service settings (`CONVEYOR_*` environment variables)."""

from __future__ import annotations

from functools import lru_cache

from conveyor_common.settings import BaseServiceSettings, CelerySettings, RedisSettings

SERVICE_NAME = "result-service"


class Settings(BaseServiceSettings, RedisSettings, CelerySettings):
    port: int = 8002
    # Seconds a client should wait before retrying when Redis is unreachable.
    retry_after_seconds: int = 1
    # How long uvicorn lets in-flight requests finish after SIGTERM.
    shutdown_grace_seconds: int = 10


@lru_cache
def get_settings() -> Settings:
    return Settings()
