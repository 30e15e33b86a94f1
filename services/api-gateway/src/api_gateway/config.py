"""api-gateway settings (`CONVEYOR_*` environment variables)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from conveyor_common.settings import BaseServiceSettings, RedisSettings

SERVICE_NAME = "api-gateway"


class Settings(BaseServiceSettings, RedisSettings):
    port: int = 8000
    job_service_url: str = "http://127.0.0.1:8001"
    result_service_url: str = "http://127.0.0.1:8002"

    # Upstream calls: a short connect timeout so a dead service fails fast (503), a read timeout
    # long enough for a 1,000-job batch commit (else 504).
    upstream_connect_timeout: float = Field(default=1.0, gt=0)
    upstream_read_timeout: float = Field(default=10.0, gt=0)
    upstream_write_timeout: float = Field(default=10.0, gt=0)
    upstream_pool_timeout: float = Field(default=2.0, gt=0)
    upstream_max_connections: int = Field(default=100, ge=1)
    upstream_max_keepalive: int = Field(default=20, ge=0)
    readiness_timeout: float = Field(default=1.0, gt=0)
    retry_after_seconds: int = Field(default=1, ge=0)

    # Verified keys are remembered this long, so revocation takes effect within it.
    auth_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    auth_cache_max_entries: int = Field(default=10_000, ge=1)

    # How long uvicorn lets in-flight requests finish after SIGTERM.
    shutdown_grace_seconds: int = 15


@lru_cache
def get_settings() -> Settings:
    return Settings()
