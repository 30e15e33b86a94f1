"""Whole Conveyor stacks for end-to-end and fault tests (`conveyor_devstack.stack.Stack`).

`stack_factory(**config)` starts job-service, result-service, api-gateway and workers on free
ports against the session's PostgreSQL (a fresh database per stack, dropped afterwards) and
Redis (the test's `redis_namespace`), with output in per-process log files under
`process_log_dir`. When a test fails, the tail of every log is added to its report.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor_devstack.output import LogFiles
from conveyor_devstack.stack import Stack, StackConfig
from conveyor_testing.databases import asyncpg_url, drop_database, fresh_database

_STACKS_ATTR = "_conveyor_stacks"


@contextmanager
def running_stack(
    postgres_url: str, redis_url: str, log_dir: Path, *, workers: int = 1, **config: Any
) -> Iterator[Stack]:
    """A started `Stack` on a fresh database and its own Redis namespace, for fixtures wider
    than one test (module or package scope); stopped, its database dropped and its keys deleted
    on exit. `config` overrides any `StackConfig` field."""
    database = fresh_database(postgres_url)
    namespace = config.setdefault("redis_namespace", f"e2e{uuid.uuid4().hex[:10]}")
    config.setdefault("internal_token", secrets.token_urlsafe(24))
    config.setdefault("worker_concurrency", 2)
    stack = Stack(
        StackConfig.on_free_ports(
            database_url=asyncpg_url(database), redis_url=redis_url, workers=workers, **config
        ),
        LogFiles(log_dir),
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(grace=10.0)
        drop_database(postgres_url, database)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        finally:
            client.close()


@pytest.fixture
def stack_factory(
    request: pytest.FixtureRequest,
    postgres_backend: Any,
    redis_backend: Any,
    redis_namespace: str,
    process_log_dir: Path,
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []
    databases: list[str] = []
    setattr(request.node, _STACKS_ATTR, stacks)

    def make(*, workers: int = 1, start: bool = True, **config: Any) -> Stack:
        """A started `Stack` (`start=False`: built but not started); `config` overrides any
        `StackConfig` field (`worker_concurrency`, `worker_pool`, `database_url`, ...)."""
        if "database_url" not in config:
            url = fresh_database(postgres_backend.url)
            databases.append(url)
            config["database_url"] = asyncpg_url(url)
        config.setdefault("redis_url", redis_backend.url)
        config.setdefault("redis_namespace", redis_namespace)
        config.setdefault("internal_token", secrets.token_urlsafe(24))
        log_dir = process_log_dir if not stacks else process_log_dir / f"stack{len(stacks) + 1}"
        stack = Stack(StackConfig.on_free_ports(workers=workers, **config), LogFiles(log_dir))
        stacks.append(stack)
        if start:
            stack.start()
        return stack

    yield make
    try:
        for stack in reversed(stacks):
            stack.stop(grace=10.0)
    finally:
        for url in databases:
            drop_database(postgres_backend.url, url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    stacks: list[Stack] | None = getattr(item, _STACKS_ATTR, None)
    if not stacks or not report.failed or report.when == "teardown":
        return
    for number, stack in enumerate(stacks, start=1):
        for name, child in stack.processes.items():
            tail = child.tail(60)
            if tail:
                report.sections.append((f"stack {number} {name} log (last lines)", tail))
