"""Real-backend fixtures for job-service: a migrated database per test on BOTH backends
(PostgreSQL cloned from a template migrated once per session; SQLite copied from a file migrated
once per session) and the real app, lifespan running, wired to the test's Redis namespace."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.catalog import TaskDefaults, TaskDescriptor
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.messages import kombu_priority, priority_queue_keys, queue_key
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from job_service.app import create_app
from job_service.config import Settings
from job_service.migrate import upgrade
from job_service.models import Job, JobEvent, OutboxEntry

INTERNAL_TOKEN = "test-internal-token-0123456789"
TENANT = "acme"

ECHO_SCHEMA = {
    "type": "object",
    "properties": {"x": {"type": "integer", "minimum": 0}, "label": {"type": "string"}},
    "required": ["x"],
    "additionalProperties": False,
}
CATALOG = [
    TaskDescriptor(name="echo", description="returns x", input_schema=ECHO_SCHEMA),
    TaskDescriptor(name="noop", input_schema={"type": "object"}),
    TaskDescriptor(
        name="reports.build",
        input_schema={"type": "object"},
        defaults=TaskDefaults(queue="reports", timeout_seconds=42, max_attempts=5),
    ),
    TaskDescriptor(
        name="flaky",
        input_schema={"type": "object"},
        defaults=TaskDefaults(
            max_attempts=3,
            retry_backoff_seconds=10,
            retry_backoff_max_seconds=15,
            retry_jitter=False,
        ),
    ),
]


def _admin_url(url: str) -> str:
    _scheme, rest = url.split("://", 1)
    return "postgresql://" + rest


def _with_database(url: str, name: str) -> str:
    base = _admin_url(url).rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_admin_url(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template(postgres_backend: Any) -> Iterator[str]:
    """A database migrated once; each PostgreSQL test clones it (CREATE DATABASE ... TEMPLATE)."""
    name = f"js_tmpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(postgres_backend.url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade(_with_database(postgres_backend.url, name))
        yield name
    finally:
        asyncio.run(_admin(postgres_backend.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


# Database fixtures are sync on purpose: the session templates they pull in lazily run Alembic,
# which runs its own event loop and so can't start inside the test's.
@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "job-service.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    backend = request.getfixturevalue("postgres_backend")
    template = request.getfixturevalue("pg_template")
    name = f"js_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(backend.url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield "postgresql+asyncpg://" + _with_database(backend.url, name).split("://", 1)[1]
    finally:
        asyncio.run(_admin(backend.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    backend = request.getfixturevalue("postgres_backend")
    name = f"js_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(backend.url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(backend.url, name)
    finally:
        asyncio.run(_admin(backend.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_settings(
    database_url: str, redis_backend: Any, redis_namespace: str
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "internal_token": INTERNAL_TOKEN,
            "database_url": database_url,
            "redis_url": redis_backend.url,
            "redis_namespace": redis_namespace,
            "relay_sweep_seconds": 0.1,
            "relay_backoff_max_seconds": 0.5,
            "events_block_ms": 100,
            "events_backoff_max_seconds": 0.5,
            "events_claim_interval_seconds": 0.5,
            "promoter_interval_seconds": 0.1,
            "catalog_cache_seconds": 0.0,
            "reconcile_interval_seconds": 0.2,
            # The reconciler runs in the background harness too: leave jobs that tests put in
            # RUNNING (without a worker, so without a lease) alone unless a test asks.
            "lease_ttl_seconds": 120.0,
            "gauges_interval_seconds": 0.2,
            "shutdown_grace_seconds": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@dataclass
class StatementCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


@dataclass
class Harness:
    """The running app and ways to look at the real stores behind it."""

    app: Any
    client: httpx.AsyncClient
    redis: aioredis.Redis
    settings: Settings

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_namespace)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.app.state.sessionmaker() as session:
            yield session

    async def seed_catalog(self, descriptors: list[TaskDescriptor] = CATALOG) -> None:
        await self.redis.hset(
            self.keys.catalog, mapping={d.name: d.model_dump_json() for d in descriptors}
        )

    async def count(self, model: Any, *where: Any) -> int:
        async with self.session() as session:
            stmt = select(func.count()).select_from(model)
            for clause in where:
                stmt = stmt.where(clause)
            return int((await session.execute(stmt)).scalar_one())

    async def job(self, job_id: uuid.UUID | str) -> Job:
        async with self.session() as session:
            job = await session.get(Job, uuid.UUID(str(job_id)))
            assert job is not None
            return job

    async def events_of(self, job_id: uuid.UUID | str) -> list[JobEvent]:
        async with self.session() as session:
            stmt = (
                select(JobEvent)
                .where(JobEvent.job_id == uuid.UUID(str(job_id)))
                .order_by(JobEvent.id)
            )
            return list((await session.execute(stmt)).scalars())

    async def outbox_size(self) -> int:
        return await self.count(OutboxEntry)

    async def queue_messages(
        self, queue: str = "default", priority: int = 0
    ) -> list[dict[str, Any]]:
        """Messages of one Conveyor priority waiting in a Celery queue, oldest first, with the
        body decoded."""
        key = self.keys.queue(queue_key(queue, kombu_priority(priority)))
        raw = await self.redis.lrange(key, 0, -1)
        messages = []
        for item in reversed(raw):  # LPUSH + BRPOP: the oldest is at the right end
            message = json.loads(item)
            message["decoded_body"] = json.loads(base64.b64decode(message["body"]))
            messages.append(message)
        return messages

    async def clear_queue(self, queue: str = "default") -> None:
        """Empties a queue's lists, as if workers had taken every message."""
        await self.redis.delete(*(self.keys.queue(key) for key in priority_queue_keys(queue)))

    async def queue_length(self, queue: str = "default") -> int:
        """Messages waiting in a queue, all priorities."""
        pipe = self.redis.pipeline(transaction=False)
        for key in priority_queue_keys(queue):
            pipe.llen(self.keys.queue(key))
        return sum(await pipe.execute())

    def event(
        self,
        job_id: uuid.UUID | str,
        kind: EventType,
        attempt: int = 1,
        *,
        at: datetime | None = None,
        **extra: Any,
    ) -> LifecycleEvent:
        """A worker's lifecycle event for one of this tenant's jobs (now, unless `at`)."""
        return LifecycleEvent(
            job_id=uuid.UUID(str(job_id)),
            tenant_id=TENANT,
            attempt=attempt,
            type=kind,
            at=at or datetime.now(UTC),
            task=extra.pop("task", "echo"),
            worker=extra.pop("worker", "w-1"),
            **extra,
        )

    async def drain_events(self) -> None:
        """Applies everything in the lifecycle stream (for tests without background loops)."""
        reader = self.app.state.reader
        await reader.ensure_group()
        while await reader.read_once(block_ms=1):
            pass

    async def report(self, *events: LifecycleEvent) -> None:
        """Appends events as a worker would and applies them."""
        await self.add_events(*events)
        await self.drain_events()

    async def add_events(self, *events: LifecycleEvent) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for lifecycle_event in events:
            pipe.xadd(self.keys.events_stream, lifecycle_event.to_stream_fields())
        await pipe.execute()

    @contextmanager
    def count_statements(self) -> Iterator[StatementCounter]:
        counter = StatementCounter()
        engine = self.app.state.engine.sync_engine

        def on_execute(*args: Any) -> None:
            counter.statements.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)

    async def submit(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.client.post("/internal/v1/jobs", json=body, **kwargs)


@pytest.fixture
async def redis_async(redis_backend: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_backend.url)
    yield client
    await client.aclose()


HarnessFactory = Callable[..., Any]


@pytest.fixture
def harness_factory(
    make_settings: Callable[..., Settings], redis_async: aioredis.Redis
) -> HarnessFactory:
    """`async with harness_factory(**settings_overrides) as h:` runs the app (lifespan and
    background loops as configured) and gives an HTTP client on it."""

    @asynccontextmanager
    async def run(
        *, redis_client: aioredis.Redis | None = None, **overrides: Any
    ) -> AsyncIterator[Harness]:
        settings = make_settings(**overrides)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://job-service",
                headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN, TENANT_HEADER: TENANT},
            ) as client:
                yield Harness(app, client, redis_client or redis_async, settings)

    return run


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> AsyncIterator[Harness]:
    """The app with its background loops running and the test catalog seeded."""
    async with harness_factory() as h:
        await h.seed_catalog()
        yield h


@pytest.fixture
async def quiet_harness(harness_factory: HarnessFactory) -> AsyncIterator[Harness]:
    """The app with no background loops: the test drives relay, reader and promoter itself."""
    async with harness_factory(background_tasks=False) as h:
        await h.seed_catalog()
        yield h


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Polls `check` until it returns a truthy value; fails with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    return eventually


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under this folder needs real servers: mark it `integration`."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
