"""The health server on a loopback port, with readiness supplied by the test."""

from __future__ import annotations

import httpx
import pytest

from conveyor_worker.health import HealthServer


@pytest.fixture
def checks():
    return {"redis": "ok", "consumer": "ok"}


@pytest.fixture
def server(checks):
    srv = HealthServer("127.0.0.1", 0, lambda: checks).start()
    yield f"http://127.0.0.1:{srv.port}"
    srv.stop()


def test_healthz_and_metrics(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    metrics = httpx.get(f"{server}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{server}/other").status_code == 404


def test_readyz_follows_the_checks(server, checks):
    assert httpx.get(f"{server}/readyz").status_code == 200
    checks["consumer"] = "not consuming"
    answer = httpx.get(f"{server}/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not-ready",
        "checks": {"redis": "ok", "consumer": "not consuming"},
    }
