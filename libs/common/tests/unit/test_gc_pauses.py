"""Start-up objects leave the collector's full collections once a service is ready."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from conveyor_common import gc_pauses
from conveyor_common.gc_pauses import freeze_startup_objects
from conveyor_common.web import create_service_app


@pytest.fixture(autouse=True)
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    gc.unfreeze()
    monkeypatch.setattr(gc_pauses, "_frozen_in", None)
    yield
    gc.unfreeze()


def test_freezing_moves_the_surviving_objects_out_of_the_collected_generations() -> None:
    kept = [object() for _ in range(1_000)]
    assert gc.get_freeze_count() == 0
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(kept)


def test_a_process_freezes_once_and_a_forked_child_again() -> None:
    freeze_startup_objects()
    frozen = gc.get_freeze_count()
    later = [[] for _ in range(1_000)]  # tracked containers made after the freeze
    freeze_startup_objects()
    assert gc.get_freeze_count() == frozen

    gc_pauses._frozen_in = -1  # as a child sees it: the value its parent set
    freeze_startup_objects()
    assert gc.get_freeze_count() >= frozen + len(later)


async def test_a_service_freezes_after_its_own_startup_and_before_the_first_request() -> None:
    seen: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        seen["during_startup"] = gc.get_freeze_count()
        yield

    app = create_service_app("test", title="t", lifespan=lifespan, readiness=lambda _r: {})

    @app.get("/probe")
    async def probe() -> dict[str, int]:
        return {"frozen": gc.get_freeze_count()}

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://svc") as client,
    ):
        frozen = (await client.get("/probe")).json()["frozen"]
    assert seen["during_startup"] == 0
    assert frozen > 0
