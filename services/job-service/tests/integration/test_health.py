from __future__ import annotations

from typing import Any


async def test_health_ready_metrics_and_catalog(quiet_harness: Any) -> None:
    h = quiet_harness
    assert (await h.client.get("/healthz")).json() == {"status": "ok"}
    ready = await h.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert "conveyor_http_requests_total" in (await h.client.get("/metrics")).text

    catalog = (await h.client.get("/internal/v1/tasks")).json()
    assert [t["name"] for t in catalog["tasks"]] == ["echo", "flaky", "noop", "reports.build"]
    assert catalog["tasks"][0]["input_schema"]["required"] == ["x"]
    response = await h.client.get("/internal/v1/tasks")
    assert response.headers["x-request-id"]


async def test_connections_carry_the_service_name(quiet_harness: Any) -> None:
    h = quiet_harness
    await h.client.get("/readyz")
    clients = await h.redis.client_list()
    assert any(c.get("name") == "conveyor-job-service" for c in clients)
    async with h.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy import text

            name = (await session.execute(text("SHOW application_name"))).scalar_one()
            assert name == "conveyor-job-service"
        else:
            from sqlalchemy import text

            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
            assert mode == "wal"
