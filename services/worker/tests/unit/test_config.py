from __future__ import annotations

import pytest
from pydantic import ValidationError

from conveyor_common.celery_app import visibility_timeout
from conveyor_worker.builtin.netguard import AllowedHost
from conveyor_worker.config import Settings

WORKER_VARS = (
    "CONVEYOR_PORT", "CONVEYOR_WORKER_HEALTH_PORT", "CONVEYOR_QUEUES", "CONVEYOR_WORKER_QUEUES",
    "CONVEYOR_CONCURRENCY", "CONVEYOR_WORKER_CONCURRENCY", "CONVEYOR_POOL",
    "CONVEYOR_WORKER_POOL", "CONVEYOR_TASK_MODULES", "CONVEYOR_HTTP_ALLOWED_HOSTS",
    "CONVEYOR_ENVIRONMENT", "CONVEYOR_INTERNAL_TOKEN", "CONVEYOR_WORKER_NAME",
    "CONVEYOR_LEASE_TTL_SECONDS", "CONVEYOR_CANCEL_CHECK_INTERVAL_SECONDS",
    "CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS", "CONVEYOR_MAX_TIMEOUT_SECONDS",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in WORKER_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    settings = Settings()
    assert settings.port == 8003
    assert settings.pool == "prefork"
    assert settings.queues == []
    assert settings.effective_concurrency >= 1
    assert settings.effective_queues(["images", "default", "images"]) == ["images", "default"]
    assert settings.effective_queues([]) == ["default"]


def test_production_needs_no_internal_token(monkeypatch):
    monkeypatch.setenv("CONVEYOR_ENVIRONMENT", "production")
    assert Settings().environment == "production"


def test_comma_separated_lists_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONVEYOR_QUEUES", "a, b,,a")
    monkeypatch.setenv("CONVEYOR_TASK_MODULES", "team.tasks,other.tasks")
    monkeypatch.setenv("CONVEYOR_HTTP_ALLOWED_HOSTS", "127.0.0.1:8080, api.example.com")
    settings = Settings()
    assert settings.effective_queues(["ignored"]) == ["a", "b"]
    assert settings.task_modules == ["team.tasks", "other.tasks"]
    assert settings.http_policy().allowed_hosts == {
        AllowedHost("127.0.0.1", 8080),
        AllowedHost("api.example.com"),
    }


def test_worker_prefixed_names_win(monkeypatch):
    monkeypatch.setenv("CONVEYOR_PORT", "9000")
    monkeypatch.setenv("CONVEYOR_WORKER_HEALTH_PORT", "9100")
    monkeypatch.setenv("CONVEYOR_CONCURRENCY", "3")
    monkeypatch.setenv("CONVEYOR_WORKER_POOL", "threads")
    settings = Settings()
    assert (settings.port, settings.concurrency, settings.pool) == (9100, 3, "threads")


def test_solo_pool_runs_one_at_a_time():
    assert Settings(pool="solo", concurrency=8).effective_concurrency == 1


def test_port_zero_turns_the_server_off_and_bad_values_are_refused():
    assert Settings(port=0).port == 0
    with pytest.raises(ValidationError):
        Settings(pool="gevent")
    with pytest.raises(ValidationError):
        Settings(http_allowed_hosts="host:notaport")


def test_lease_and_shutdown_settings(monkeypatch):
    settings = Settings()
    assert settings.lease_ttl_seconds == 30
    assert settings.lease_tick_seconds == 1.0  # the cancel check, more often than TTL/3
    # The fence outlives a kombu redelivery (about one visibility timeout) twice over.
    assert settings.fence_ttl_seconds == 2 * visibility_timeout(settings.max_timeout_seconds)
    # By default the longest task (Celery's hard limit ceiling) finishes, with time to report.
    assert settings.shutdown_grace(3630) == 3660

    monkeypatch.setenv("CONVEYOR_LEASE_TTL_SECONDS", "3")
    monkeypatch.setenv("CONVEYOR_CANCEL_CHECK_INTERVAL_SECONDS", "5")
    monkeypatch.setenv("CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS", "2.5")
    settings = Settings()
    assert settings.lease_ttl_seconds == 3
    assert settings.lease_tick_seconds == 1.0  # TTL/3 now comes first
    assert settings.shutdown_grace(3630) == 2.5
    with pytest.raises(ValidationError):
        Settings(lease_ttl_seconds=1)
