"""One stack per test module: starting every service and a worker costs seconds, and the tests
in a module don't disturb each other (each uses its own tenant or jobs). Fault tests that stop
or kill processes use the function-scoped `stack_factory` instead."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from conveyor_devstack.output import LogFiles
from conveyor_devstack.stack import Stack, StackConfig
from conveyor_testing.databases import asyncpg_url, drop_database, fresh_database


@pytest.fixture(scope="module")
def module_stack(
    postgres_backend: Any, redis_backend: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database = fresh_database(postgres_backend.url)
    namespace = f"e2e{uuid.uuid4().hex[:10]}"
    config = StackConfig.on_free_ports(
        database_url=asyncpg_url(database),
        redis_url=redis_backend.url,
        redis_namespace=namespace,
        internal_token=secrets.token_urlsafe(24),
        workers=1,
        worker_concurrency=2,
    )
    stack = Stack(config, LogFiles(tmp_path_factory.mktemp("stack-logs")))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(grace=10.0)
        drop_database(postgres_backend.url, database)
        client = redis.Redis.from_url(redis_backend.url)
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
