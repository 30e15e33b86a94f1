"""The settings each process of a stack is started with (docs/architecture.md)."""

import sys

import pytest

from conveyor_devstack.output import LogFiles
from conveyor_devstack.stack import Stack, StackConfig


def _stack(tmp_path, **kwargs):
    config = StackConfig(
        database_url="sqlite+aiosqlite:////tmp/x.db", redis_url="redis://127.0.0.1:1/0", **kwargs
    )
    return Stack(config, LogFiles(tmp_path))


def test_processes_and_commands(tmp_path):
    stack = _stack(tmp_path, workers=2)
    assert list(stack.processes) == [
        "job-service", "result-service", "api-gateway", "worker-1", "worker-2",
    ]  # fmt: skip
    assert stack.process("job-service").args[-3:] == ["-m", "job_service", "serve"]
    assert stack.process("api-gateway").args[-2:] == ["-m", "api_gateway"]
    assert stack.process("worker-2").args[-2:] == ["-m", "conveyor_worker"]


def test_default_ports_follow_the_architecture(tmp_path):
    stack = _stack(tmp_path, workers=2)
    env = {name: child.env for name, child in stack.processes.items()}
    assert env["api-gateway"]["CONVEYOR_PORT"] == "8000"
    assert env["job-service"]["CONVEYOR_PORT"] == "8001"
    assert env["result-service"]["CONVEYOR_PORT"] == "8002"
    assert env["worker-1"]["CONVEYOR_WORKER_HEALTH_PORT"] == "8003"
    assert env["worker-2"]["CONVEYOR_WORKER_HEALTH_PORT"] == "8004"
    assert stack.health_url("worker-2") == "http://127.0.0.1:8004"


def test_every_process_knows_where_the_others_are(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_PORT", "9999")  # the caller's own settings never leak in
    stack = _stack(
        tmp_path, job_service_port=7001, result_service_port=7002, internal_token="tok",
        redis_namespace="ns1", extra_env={"CONVEYOR_LOG_LEVEL": "DEBUG"},
        worker_concurrency=3, worker_pool="threads",
    )  # fmt: skip
    for child in stack.processes.values():
        assert child.env["CONVEYOR_ENVIRONMENT"] == "development"
        assert child.env["CONVEYOR_JOB_SERVICE_URL"] == "http://127.0.0.1:7001"
        assert child.env["CONVEYOR_RESULT_SERVICE_URL"] == "http://127.0.0.1:7002"
        assert child.env["CONVEYOR_REDIS_URL"] == "redis://127.0.0.1:1/0"
        assert child.env["CONVEYOR_REDIS_NAMESPACE"] == "ns1"
        assert child.env["CONVEYOR_INTERNAL_TOKEN"] == "tok"
        assert child.env["CONVEYOR_LOG_LEVEL"] == "DEBUG"
        assert child.env["CONVEYOR_PORT"] != "9999"
    # Only job-service touches the database.
    assert "CONVEYOR_DATABASE_URL" in stack.process("job-service").env
    assert "CONVEYOR_DATABASE_URL" not in stack.process("api-gateway").env
    worker = stack.process("worker-1").env
    assert worker["CONVEYOR_WORKER_CONCURRENCY"] == "3"
    assert worker["CONVEYOR_WORKER_POOL"] == "threads"


def test_free_ports_are_distinct(tmp_path):
    config = StackConfig.on_free_ports(
        database_url="sqlite+aiosqlite:////tmp/x.db", redis_url="redis://x", workers=3
    )
    ports = [
        config.gateway_port, config.job_service_port, config.result_service_port,
        *config.worker_health_ports,
    ]  # fmt: skip
    assert len(set(ports)) == 6
    assert all(port > 0 for port in ports)


def test_one_health_port_per_worker():
    with pytest.raises(ValueError, match="health port"):
        StackConfig(database_url="x", redis_url="y", workers=2, worker_health_ports=[1])


def test_unknown_process_name(tmp_path):
    with pytest.raises(KeyError, match="worker-1"):
        _stack(tmp_path).process("worker-9")


def test_service_env_reaches_the_processes_of_that_service(tmp_path):
    stack = _stack(
        tmp_path,
        workers=2,
        service_env={
            "worker": {"CONVEYOR_REDIS_USERNAME": "conveyor-worker"},
            "api-gateway": {"CONVEYOR_REDIS_USERNAME": "conveyor-gateway"},
        },
    )
    users = {n: c.env.get("CONVEYOR_REDIS_USERNAME") for n, c in stack.processes.items()}
    assert users == {
        "job-service": None, "result-service": None, "api-gateway": "conveyor-gateway",
        "worker-1": "conveyor-worker", "worker-2": "conveyor-worker",
    }  # fmt: skip
    with pytest.raises(ValueError, match="flower"):
        _stack(tmp_path, service_env={"flower": {}})


def test_only_migrate_gets_the_migration_url_and_the_app_role(tmp_path):
    show = (
        "import os; print(os.environ.get('CONVEYOR_DATABASE_MIGRATION_URL'), "
        "os.environ.get('CONVEYOR_DATABASE_APP_ROLE'))"
    )
    stack = _stack(
        tmp_path,
        migration_database_url="postgresql://owner@db/conveyor",
        database_app_role="conveyor_app",
        job_service_cli=[sys.executable, "-c", show],
    )
    assert stack.run_job_service_command("migrate").split() == [
        "postgresql://owner@db/conveyor", "conveyor_app",
    ]  # fmt: skip
    assert stack.run_job_service_command("create-api-key").split() == ["None", "None"]
