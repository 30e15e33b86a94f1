"""The command line, as real processes: migrate, create-api-key (the key alone on stdout),
serve (answers, and shuts down through the lifespan on SIGTERM)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module
from job_service import __main__ as cli
from job_service.config import get_settings

TOKEN = "cli-test-token-0123456789"


def _env(tmp_path: Path, redis_url: str, namespace: str) -> dict[str, str]:
    return {
        "CONVEYOR_ENVIRONMENT": "test",
        "CONVEYOR_INTERNAL_TOKEN": TOKEN,
        "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CONVEYOR_REDIS_URL": redis_url,
        "CONVEYOR_REDIS_NAMESPACE": namespace,
        "CONVEYOR_LOG_JSON": "true",
        "CONVEYOR_PORT": str(free_port()),
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "job_service", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_migrate_create_api_key_and_serve(
    tmp_path: Path, redis_backend: Any, redis_namespace: str, process_log_dir: Path
) -> None:
    env = _env(tmp_path, redis_backend.url, redis_namespace)
    migrated = _cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == ""

    created = _cli(
        env, "create-api-key", "--tenant", "acme", "--name", "ci", "--scopes", "jobs:read"
    )
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"cvk_[a-z0-9]{8,12}_[A-Za-z0-9_-]{43,}\n", created.stdout)
    key = created.stdout.strip()
    assert key not in created.stderr  # logs name the prefix, never the secret

    port = env["CONVEYOR_PORT"]
    process = ManagedProcess(
        "job-service", python_module("job_service", "serve"), env=env, log_dir=process_log_dir
    ).start()
    try:
        process.wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60)
        verified = httpx.post(
            f"http://127.0.0.1:{port}/internal/v1/auth/verify",
            json={"key": key},
            headers={"X-Conveyor-Internal-Token": TOKEN},
        )
        assert verified.status_code == 200
        assert verified.json()["scopes"] == ["jobs:read"]
        # uvicorn drains, runs the lifespan's shutdown, then re-raises the signal it caught.
        assert process.terminate(timeout=30) in (0, -15)
        assert "job_service.stopped" in process.read_log()
    finally:
        process.kill()


def test_create_api_key_refuses_a_bad_tenant(
    tmp_path: Path,
    redis_backend: Any,
    redis_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in _env(tmp_path, redis_backend.url, redis_namespace).items():
        monkeypatch.setenv(name, value)
    # In-process: leave the test process's logging set-up alone (so logs may reach stdout
    # here; the process test above checks that stdout carries the key alone).
    monkeypatch.setattr(cli, "configure_logging", lambda *_a, **_k: None)
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 0
        assert cli.main(["create-api-key", "--tenant", "Not A Tenant", "--name", "x"]) == 2
    finally:
        get_settings.cache_clear()
    assert "cvk_" not in capsys.readouterr().out
