from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from result_service.app import create_app
from result_service.config import Settings

INTERNAL_TOKEN = "result-service-test-token"
TENANT = "acme"

ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "environment": "test",
            "internal_token": INTERNAL_TOKEN,
            "redis_socket_timeout": 2.0,
            "redis_connect_timeout": 1.0,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@asynccontextmanager
async def _open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://result-service",
            headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN, TENANT_HEADER: TENANT},
        ) as client:
            yield client


@pytest.fixture
def open_client() -> ClientFactory:
    """The real app, lifespan running, called in-process through ASGITransport."""
    return _open_client
