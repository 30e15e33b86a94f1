"""`python -m result_service` serves, is ready against a real Redis, and exits cleanly on
SIGTERM."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx
import pytest

from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_testing.plugin import Backend
from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module

pytestmark = pytest.mark.integration


def test_serves_and_shuts_down_gracefully(
    redis_backend: Backend, redis_namespace: str, process_log_dir: Path
) -> None:
    port = free_port()
    token = "process-test-token"
    process = ManagedProcess(
        "result-service",
        python_module("result_service"),
        env={
            "CONVEYOR_ENVIRONMENT": "test",
            "CONVEYOR_PORT": str(port),
            "CONVEYOR_INTERNAL_TOKEN": token,
            "CONVEYOR_REDIS_URL": redis_backend.url,
            "CONVEYOR_REDIS_NAMESPACE": redis_namespace,
        },
        log_dir=process_log_dir,
    ).start()
    try:
        process.wait_http_ok(f"http://127.0.0.1:{port}/readyz")
        response = httpx.get(
            f"http://127.0.0.1:{port}/internal/v1/results/{uuid.uuid4()}",
            headers={INTERNAL_TOKEN_HEADER: token, TENANT_HEADER: "acme"},
        )
        assert response.status_code == 404
    finally:
        code = process.terminate()
    # uvicorn re-raises the SIGTERM it handled once it has drained, so the exit status is that
    # of the signal; what shows the shutdown was graceful is the lifespan finishing.
    assert code in (0, -signal.SIGTERM), process.tail()
    assert "Application shutdown complete" in process.read_log()
    assert "Traceback" not in process.read_log()
