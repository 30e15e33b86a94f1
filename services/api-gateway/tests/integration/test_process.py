"""`python -m api_gateway` serves, and on SIGTERM finishes the requests in flight before it
exits."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module

pytestmark = pytest.mark.integration


def test_drains_in_flight_requests_on_sigterm(
    upstream_double: Any,
    double: Any,
    keys: Any,
    process_log_dir: Path,
    redis_backend: Any,
    redis_namespace: str,
) -> None:
    port = free_port()
    process = ManagedProcess(
        "api-gateway",
        python_module("api_gateway"),
        env={
            "CONVEYOR_ENVIRONMENT": "test",
            "CONVEYOR_PORT": str(port),
            "CONVEYOR_INTERNAL_TOKEN": keys.internal_token,
            "CONVEYOR_JOB_SERVICE_URL": upstream_double.url,
            "CONVEYOR_RESULT_SERVICE_URL": upstream_double.url,
            "CONVEYOR_REDIS_URL": redis_backend.url,
            "CONVEYOR_REDIS_NAMESPACE": redis_namespace,
        },
        log_dir=process_log_dir,
    ).start()
    answers: list[httpx.Response] = []
    try:
        process.wait_http_ok(f"http://127.0.0.1:{port}/readyz")
        double.delay_seconds = 1.0
        in_flight = threading.Thread(
            target=lambda: answers.append(
                httpx.get(
                    f"http://127.0.0.1:{port}/v1/tasks",
                    headers={"Authorization": f"Bearer {keys.read}"},
                    timeout=30,
                )
            )
        )
        in_flight.start()
        deadline = time.monotonic() + 20
        while not double.calls_to("/internal/v1/tasks"):
            assert time.monotonic() < deadline, process.tail()
            time.sleep(0.02)
        code = process.terminate()
        in_flight.join(30)
    finally:
        process.kill()

    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["tasks"][0]["name"] == "echo"
    # uvicorn re-raises the SIGTERM it handled once drained, so the status is the signal's.
    assert code in (0, -signal.SIGTERM), process.tail()
    assert "Application shutdown complete" in process.read_log()
    assert "Traceback" not in process.read_log()
