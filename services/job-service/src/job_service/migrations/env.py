"""Alembic environment: async engines (asyncpg, aiosqlite), or a connection handed over by the
caller in `config.attributes["connection"]` (tests, `migrate`)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from job_service.db import build_engine, is_sqlite
from job_service.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite can't ALTER most things in place; batch mode copies the table.
        render_as_batch=is_sqlite(connection.engine.url),
        compare_type=True,
        compare_server_default=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = build_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        # Only the database settings: migrating needs no service secrets.
        from job_service.config import MigrationSettings

        url = MigrationSettings().migration_url
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
