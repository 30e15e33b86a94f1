"""docker-compose.yml: parsed with PyYAML and checked for the stack's invariants, then resolved
by `docker-compose config` (Debian's docker-compose; it only parses, no engine is involved) to
prove the file is valid Compose and that every required secret fails fast when unset."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO, find_tool, run_tool

from conveyor_common.celery_app import celery_config

COMPOSE_FILE = REPO / "docker-compose.yml"
SECRETS = (
    "POSTGRES_PASSWORD",
    "POSTGRES_APP_PASSWORD",
    "REDIS_PASSWORD",
    "CONVEYOR_INTERNAL_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
    "FLOWER_BASIC_AUTH",
)
CONVEYOR_SERVICES = {
    "api-gateway": ("services/api-gateway/Dockerfile", 8000),
    "job-service": ("services/job-service/Dockerfile", 8001),
    "result-service": ("services/result-service/Dockerfile", 8002),
}
HARDENED = (
    "migrate",
    "job-service",
    "result-service",
    "api-gateway",
    "worker-1",
    "worker-2",
    "flower",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def duration_seconds(value: str) -> int:
    parts = re.findall(r"(\d+)(h|m|s)", value)
    assert "".join(n + u for n, u in parts) == value, f"unparsed duration {value!r}"
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def compose_config(tmp_path: Path, env: dict[str, str]) -> Any:
    """`docker-compose config` with exactly `env` (no .env file, no inherited secrets)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {
        k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("CONVEYOR_")
    }
    return run_tool(
        [
            find_tool("docker-compose"),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
        ],
        cwd=tmp_path,
        env={**clean, **env},
    )


def test_the_whole_stack_is_there(services: dict[str, Any]) -> None:
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "api-gateway",
        "job-service",
        "result-service",
        "worker-1",
        "worker-2",
        "flower",
        "prometheus",
        "grafana",
    }


def test_postgres_and_redis_have_health_checks(services: dict[str, Any]) -> None:
    for name in ("postgres", "redis"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert check["retries"] >= 3, name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_redis_is_configured_for_celery(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--requirepass" in command


def test_migration_runs_once_before_job_service(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "job_service", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["build"]["dockerfile"] == "services/job-service/Dockerfile"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["job-service"]["depends_on"]["migrate"]["condition"]
        == "service_completed_successfully"
    )
    # Nothing else talks to the database, so nothing else waits for the migration.
    waiting = {n for n, s in services.items() if "migrate" in (s.get("depends_on") or {})}
    assert waiting == {"job-service"}


def test_depends_on_waits_for_health(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            for dep, cond in deps.items():
                expected = (
                    "service_completed_successfully" if dep == "migrate" else "service_healthy"
                )
                assert cond["condition"] == expected, f"{name} -> {dep}"
                if expected == "service_healthy" and dep not in {"postgres", "redis"}:
                    # Conveyor images carry a HEALTHCHECK; their builds must be in this file.
                    assert "build" in services[dep], dep


def test_four_services_are_built_from_their_dockerfiles(services: dict[str, Any]) -> None:
    for name, (dockerfile, port) in CONVEYOR_SERVICES.items():
        svc = services[name]
        assert svc["build"] == {"context": ".", "dockerfile": dockerfile}
        assert (REPO / dockerfile).is_file()
        assert svc["environment"]["CONVEYOR_PORT"] == str(port)


def test_two_workers_with_warm_shutdown(services: dict[str, Any]) -> None:
    workers = {
        n: s
        for n, s in services.items()
        if s.get("build", {}).get("dockerfile") == "services/worker/Dockerfile"
    }
    assert set(workers) == {"worker-1", "worker-2"}
    hard_limit = celery_config(broker_url="redis://x", result_backend_url="redis://x")[
        "task_time_limit"
    ]
    names = set()
    for name, svc in workers.items():
        assert svc.get("stop_signal", "SIGTERM") == "SIGTERM", name
        assert duration_seconds(svc["stop_grace_period"]) > hard_limit, name
        assert "command" not in svc, name  # keep the image's tini entrypoint
        assert "entrypoint" not in svc, name
        names.add(svc["environment"]["CONVEYOR_WORKER_NAME"])
    assert len(names) == 2


def test_flower_inspects_the_workers(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["image"].startswith("mher/flower:")
    module = next(a.split("=", 1)[1] for a in flower["command"] if a.startswith("--config="))
    mounts = [v.split(":") for v in flower["volumes"]]
    (source, target, _mode) = next(m for m in mounts if m[1].endswith(f"/{module}.py"))
    assert (REPO / source).is_file()
    assert flower["environment"]["PYTHONPATH"] == str(Path(target).parent)
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"


def test_prometheus_loads_the_tested_config_and_rules(services: dict[str, Any]) -> None:
    volumes = dict(
        v.rsplit(":", 2)[:2] for v in services["prometheus"]["volumes"] if v.startswith("./")
    )
    by_target = {target: source for source, target in volumes.items()}
    config = REPO / by_target["/etc/prometheus/prometheus.yml"]
    rules_dir = REPO / by_target["/etc/prometheus/rules"]
    assert config.is_file()
    assert sorted(p.name for p in rules_dir.glob("*.yml")) == ["conveyor.rules.yml"]
    scrape = yaml.safe_load(config.read_text())
    targets = {
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert {
        "api-gateway:8000",
        "job-service:8001",
        "result-service:8002",
        "worker-1:8003",
        "worker-2:8003",
    } <= targets
    assert scrape["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_grafana_is_provisioned_with_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = {
        v.split(":")[1]: REPO / v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")
    }
    datasources = mounts["/etc/grafana/provisioning/datasources"]
    providers = mounts["/etc/grafana/provisioning/dashboards"]
    (datasource,) = yaml.safe_load((datasources / "prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((providers / "conveyor.yml").read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    assert (mounts[dashboards_dir] / "conveyor.json").is_file()
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(
        dashboards_dir
    )


def test_every_secret_is_required(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is never used"
        assert all(u.startswith(":?") and len(u) > 2 for u in uses), f"{name}: {uses}"
    # No literal value for anything that looks like a secret.
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|AUTH", key) and key != "GF_AUTH_ANONYMOUS_ENABLED":
                assert "${" in str(value), f"{name}: {key}"


def test_only_the_gateway_is_published(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for port in svc.get("ports", []):
            if name == "api-gateway":
                assert port.endswith(":8000")
            else:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_only_job_service_and_the_migration_reach_postgres(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert services["postgres"]["networks"] == ["db"]
    assert compose["networks"]["db"]["internal"] is True
    on_db = {name for name, svc in services.items() if "db" in svc.get("networks", [])}
    assert on_db == {"postgres", "migrate", "job-service"}


def test_conveyor_containers_are_hardened(services: dict[str, Any]) -> None:
    for name in HARDENED:
        svc = services[name]
        assert svc["read_only"] is True, name
        assert "/tmp" in svc["tmpfs"], name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name


def test_compose_resolves_when_every_secret_is_set(tmp_path: Path) -> None:
    result = compose_config(tmp_path, {name: f"{name.lower()}-value" for name in SECRETS})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert (
        resolved["services"]["job-service"]["depends_on"]["migrate"]["condition"]
        == "service_completed_successfully"
    )
    env = resolved["services"]["job-service"]["environment"]
    # job-service as the least-privilege role; only the migration as the owner, granting to it.
    assert env["CONVEYOR_DATABASE_URL"] == (
        "postgresql+asyncpg://conveyor_job_service:postgres_app_password-value@postgres:5432/"
        "conveyor"
    )
    assert "CONVEYOR_DATABASE_MIGRATION_URL" not in env
    assert env["CONVEYOR_INTERNAL_TOKEN"] == "conveyor_internal_token-value"
    migrate = resolved["services"]["migrate"]["environment"]
    assert migrate["CONVEYOR_DATABASE_MIGRATION_URL"] == (
        "postgresql+asyncpg://conveyor:postgres_password-value@postgres:5432/conveyor"
    )
    assert migrate["CONVEYOR_DATABASE_APP_ROLE"] == "conveyor_job_service"
    assert "CONVEYOR_DATABASE_URL" not in migrate
    postgres = resolved["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_APP_PASSWORD"] == "postgres_app_password-value"
    # docker-compose v1 renders volumes in the short form, v2 as mappings.
    mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]]
              for v in postgres["volumes"]]  # fmt: skip
    assert [REPO / "deploy" / "postgres" / "initdb", "/docker-entrypoint-initdb.d"] in [
        [Path(source), target] for source, target in mounts
    ]


@pytest.mark.parametrize("missing", SECRETS)
def test_compose_fails_fast_when_a_secret_is_unset(tmp_path: Path, missing: str) -> None:
    env = {name: "x" for name in SECRETS if name != missing}
    result = compose_config(tmp_path, env)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr, result.stderr


def test_compose_fails_fast_when_a_secret_is_empty(tmp_path: Path) -> None:
    env = dict.fromkeys(SECRETS, "x") | {"CONVEYOR_INTERNAL_TOKEN": ""}
    result = compose_config(tmp_path, env)
    assert result.returncode != 0
    assert "set CONVEYOR_INTERNAL_TOKEN" in result.stderr
