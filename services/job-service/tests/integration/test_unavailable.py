"""A database or Redis that can't be reached makes a request 503 with Retry-After, never 500."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_testing.ports import free_port
from job_service.app import create_app
from job_service.config import Settings

TOKEN = "unavailable-test-token-0123"


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings)
    threads_before = set(threading.enumerate())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://js") as client:
            response = await client.get(
                path, headers={INTERNAL_TOKEN_HEADER: TOKEN, TENANT_HEADER: "acme"}
            )
    await _aiosqlite_threads_finished(threads_before)
    return response


async def _aiosqlite_threads_finished(threads_before: set[threading.Thread]) -> None:
    """aiosqlite stops the thread of a connection that failed to open without waiting for it;
    the thread then answers on this test's event loop. Under load that came after pytest had
    closed the loop, and the thread's error was reported against the next test."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        thread.name.endswith("(_connection_worker_thread)")
        for thread in set(threading.enumerate()) - threads_before
    ):
        await asyncio.sleep(0.01)


def _settings(database_url: str, redis_url: str, namespace: str) -> Settings:
    return Settings(
        environment="test",
        internal_token=TOKEN,
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=namespace,
        background_tasks=False,
        redis_connect_timeout=0.5,
        redis_socket_timeout=0.5,
        events_block_ms=100,
    )


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_an_unreachable_database_is_503(
    backend: str, tmp_path: Path, redis_backend: Any, redis_namespace: str
) -> None:
    url = (
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    )
    response = await _get(_settings(url, redis_backend.url, redis_namespace), "/internal/v1/jobs")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:conveyor:problem:service-unavailable"


async def test_an_unreachable_redis_without_a_cached_catalog_is_503(
    tmp_path: Path, redis_namespace: str
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    settings = _settings(url, f"redis://127.0.0.1:{free_port()}/0", redis_namespace)
    response = await _get(settings, "/internal/v1/tasks")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
