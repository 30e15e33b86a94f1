"""The command line, as real processes: migrate, create-api-key and rotate-api-key (the key alone
on stdout), list-api-keys (no secrets), revoke-api-key (announced to the gateways through Redis),
serve (answers, and shuts down through the lifespan on SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from conveyor_common.redis_keys import RedisKeys
from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module
from job_service import __main__ as cli
from job_service.config import get_settings

TOKEN = "cli-test-token-0123456789"
KEY = re.compile(r"cvk_[a-z0-9]{8,12}_[A-Za-z0-9_-]{43,}")


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


def _announced(pubsub: redis.client.PubSub) -> list[str]:
    """Key ids published on the revocation channel so far (waits briefly for the first)."""
    ids: list[str] = []
    while (message := pubsub.get_message(timeout=2.0 if not ids else 0.1)) is not None:
        if message["type"] == "message":
            ids.append(message["data"].decode())
    return ids


def test_admin_keys_on_a_fresh_installation_listed_rotated_and_revoked(
    tmp_path: Path,
    redis_backend: Any,
    redis_namespace: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (a process per command costs seconds each); logs are captured apart from
    stdout, which must carry the command's answer alone."""
    for name, value in _env(tmp_path, redis_backend.url, redis_namespace).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "configure_logging", lambda *_a, **_k: None)
    get_settings.cache_clear()

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(list(args))
        return code, capsys.readouterr().out

    pubsub = redis_client.pubsub()  # type: ignore[no-untyped-call]  # untyped in redis-py
    pubsub.subscribe(RedisKeys(redis_namespace).api_key_revocations)
    try:
        with capture_logs() as logs:
            assert run("migrate")[0] == 0
            code, first_key = run(
                "create-api-key",
                "--tenant",
                "acme",
                "--name",
                "ops",
                "--scopes",
                "admin",
                "jobs:read",
            )
            assert code == 0
            code, listed = run("list-api-keys", "--tenant", "acme", "--format", "json")
            assert code == 0
            [key] = json.loads(listed)
            assert (key["name"], key["scopes"], key["status"]) == (
                "ops", ["admin", "jobs:read"], "active",
            )  # fmt: skip
            assert not KEY.search(listed)

            code, new_key = run("rotate-api-key", "--id", key["id"], "--overlap-seconds", "0")

            assert code == 0
            assert KEY.fullmatch(new_key.rstrip("\n"))
            assert new_key.count("\n") == 1
            assert new_key != first_key
            assert _announced(pubsub) == [key["id"]]
            code, table = run("list-api-keys", "--tenant", "acme")
            assert code == 0
            header, *rows = table.splitlines()
            assert header.split() == [
                "id", "prefix", "name", "status", "scopes", "created_at", "expires_at",
            ]  # fmt: skip
            assert [row.split()[3] for row in rows] == ["active", "expired"]
            assert rows[1].split()[0] == key["id"]
            assert not KEY.search(table)

            # Naming the tenant refuses another tenant's key, which stays as it was.
            assert run("revoke-api-key", "--id", key["id"], "--tenant", "globex")[0] == 2
            new_id = rows[0].split()[0]
            assert run("revoke-api-key", "--id", new_id, "--tenant", "acme")[0] == 0
            assert _announced(pubsub) == [new_id]
            final = json.loads(run("list-api-keys", "--tenant", "acme", "--format", "json")[1])
            assert [k["status"] for k in final] == ["revoked", "expired"]
    finally:
        pubsub.close()
        get_settings.cache_clear()
    for secret in (first_key.strip(), new_key.strip()):
        assert secret not in repr(logs)
    assert {"api_keys.created", "api_keys.rotated", "api_keys.revoked"} <= {
        entry["event"] for entry in logs
    }
