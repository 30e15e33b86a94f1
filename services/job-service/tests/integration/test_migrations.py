"""Migrations run on both databases, round-trip, and match the models (`alembic check`)."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
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
