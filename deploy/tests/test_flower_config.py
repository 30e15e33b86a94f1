"""Flower's Celery configuration (deploy/flower/conveyor_flower_config.py) must agree with the
workers' own (conveyor_common.celery_app): Flower's image has no Conveyor code, so the shared
settings are repeated there and compared here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from deploy_support import DEPLOY, load_module

from conveyor_common.celery_app import celery_config, visibility_timeout
from conveyor_common.redis_keys import RedisKeys

CONFIG = DEPLOY / "flower" / "conveyor_flower_config.py"


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    monkeypatch.delenv("CONVEYOR_REDIS_NAMESPACE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_module(CONFIG, "conveyor_flower_config")


def test_flower_sees_the_workers_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(
        monkeypatch, CONVEYOR_REDIS_URL="redis://:pw@redis:6379/0", CONVEYOR_REDIS_NAMESPACE="acme"
    )
    assert config.broker_url == "redis://:pw@redis:6379/0"
    workers = celery_config(
        broker_url="redis://x", result_backend_url="redis://x", namespace="acme"
    )
    assert config.broker_transport_options["global_keyprefix"] == RedisKeys("acme").celery_prefix
    assert (
        config.broker_transport_options["global_keyprefix"]
        == workers["broker_transport_options"]["global_keyprefix"]
    )


def test_flower_uses_the_default_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(monkeypatch, CONVEYOR_REDIS_URL="redis://redis:6379/0")
    assert config.broker_transport_options["global_keyprefix"] == RedisKeys().celery_prefix


def test_flower_never_shortens_the_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a shared broker the shortest visibility timeout wins silently (pitfall #21)."""
    config = load(monkeypatch, CONVEYOR_REDIS_URL="redis://redis:6379/0")
    assert config.broker_transport_options["visibility_timeout"] == visibility_timeout()


def test_flower_accepts_json_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(monkeypatch, CONVEYOR_REDIS_URL="redis://redis:6379/0")
    assert config.accept_content == ["json"]
    assert config.task_serializer == config.result_serializer == config.event_serializer == "json"


def test_flower_refuses_to_start_without_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_REDIS_URL", raising=False)
    with pytest.raises(KeyError, match="CONVEYOR_REDIS_URL"):
        load(monkeypatch)


def test_celery_loads_it_the_way_flower_is_started(tmp_path: Path) -> None:
    """`celery --config=conveyor_flower_config ...` (the command compose and Kubernetes run)
    finds the module on PYTHONPATH and applies it; `celery report` shows the result without
    connecting to a broker."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", f"--config={CONFIG.stem}", "report"],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(CONFIG.parent),
            "CONVEYOR_REDIS_URL": "redis://:hunter2@redis:6379/0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "broker_url: 'redis://:********@redis:6379/0'" in result.stdout
    assert f"'visibility_timeout': {visibility_timeout()}" in result.stdout
    assert "hunter2" not in result.stdout
