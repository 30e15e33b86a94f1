"""Migrations run on both databases, round-trip, and match the models (`alembic check`)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from job_service.db import build_engine, is_sqlite
from job_service.migrate import downgrade, upgrade
from job_service.models import Base

TABLES = {"jobs", "job_events", "outbox", "api_keys"}


async def _inspect(url: str) -> tuple[set[str], list[object]]:
    def run(connection: Connection) -> tuple[set[str], list[object]]:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "render_as_batch": is_sqlite(url),
            },
        )
        return tables, list(compare_metadata(context, Base.metadata))

    engine = build_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(run)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_database_url)
    tables, _ = await _inspect(empty_database_url)
    assert tables >= TABLES

    await asyncio.to_thread(downgrade, empty_database_url, "base")
    tables, _ = await _inspect(empty_database_url)
    assert not tables & TABLES

    await asyncio.to_thread(upgrade, empty_database_url)
    tables, diff = await _inspect(empty_database_url)
    assert tables >= TABLES
    assert diff == []


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    """What `alembic check` does: autogenerate against the migrated schema finds nothing."""
    _, diff = await _inspect(database_url)
    assert diff == [], f"models and migrations differ: {diff}"


async def _sql(url: str, *statements: str) -> list[Any]:
    engine = build_engine(url)
    try:
        async with engine.begin() as connection:
            results = [await connection.execute(text(s)) for s in statements]
            return [r.all() if r.returns_rows else None for r in results]
    finally:
        await engine.dispose()


async def test_0002_fills_the_rows_already_there_and_downgrades(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_database_url, "0001")
    job_id = uuid.uuid4()
    hex_id = job_id.hex if is_sqlite(empty_database_url) else str(job_id)
    now = "'2026-01-01 00:00:00'"
    await _sql(
        empty_database_url,
        "INSERT INTO jobs (id, tenant_id, task, queue, priority, args, status, attempts, "
        "max_attempts, timeout_seconds, tags, metadata, created_at, updated_at) VALUES "
        f"('{hex_id}', 'acme', 'echo', 'default', 0, '{{}}', 'FAILED', 2, 2, 300, '[]', '{{}}', "
        f"{now}, {now})",
        "INSERT INTO job_events (job_id, tenant_id, attempt, type, at, recorded_at) VALUES "
        f"('{hex_id}', 'acme', 2, 'failed', {now}, {now})",
    )

    await asyncio.to_thread(upgrade, empty_database_url)
    [job_rows, event_rows] = await _sql(
        empty_database_url,
        "SELECT retry_backoff_seconds, retry_backoff_max_seconds, retry_jitter, cycle, "
        "prior_attempts, dead_letter_purged_at FROM jobs",
        "SELECT cycle FROM job_events",
    )
    assert [tuple(r) for r in job_rows] == [(2, 300, True, 1, 0, None)]
    assert [tuple(r) for r in event_rows] == [(1,)]

    # The same fact in two cycles is allowed now; a downgrade keeps the first of them.
    await _sql(
        empty_database_url,
        "INSERT INTO job_events (job_id, tenant_id, attempt, cycle, type, at, recorded_at) "
        f"VALUES ('{hex_id}', 'acme', 2, 2, 'failed', {now}, {now})",
    )
    await asyncio.to_thread(downgrade, empty_database_url, "0001")
    [remaining] = await _sql(empty_database_url, "SELECT attempt, type FROM job_events")
    assert [tuple(r) for r in remaining] == [(2, "failed")]
