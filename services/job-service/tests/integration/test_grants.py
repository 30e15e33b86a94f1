"""`migrate` grants the application role exactly what job-service needs (grants.py), on a real
PostgreSQL with real roles: row access and sequences yes; DDL, TRUNCATE, writing the schema's
revision, creating schemas no; replayed every run, narrowing what was widened by hand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from conveyor_testing.databases import (
    LeastPrivilegeDatabase,
    least_privilege_database,
    with_database,
)
from job_service import __main__ as cli
from job_service.grants import GrantError, grant_app_role
from job_service.migrate import upgrade

pytestmark = pytest.mark.integration

TABLES = ("jobs", "job_events", "outbox", "api_keys")
ROW_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
OTHER_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture
def roles(postgres_backend: Any) -> Iterator[LeastPrivilegeDatabase]:
    with least_privilege_database(postgres_backend.url) as database:
        upgrade(database.migration_url)
        yield database


@pytest.fixture
async def as_migration(roles: LeastPrivilegeDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(roles.migration_url)
    yield connection
    await connection.close()


@pytest.fixture
async def as_admin(
    roles: LeastPrivilegeDatabase, postgres_backend: Any
) -> AsyncIterator[asyncpg.Connection]:
    """A superuser on the roles' database (changing owners and memberships needs one)."""
    connection = await asyncpg.connect(with_database(postgres_backend.url, roles.database))
    yield connection
    await connection.close()


async def privileges(connection: asyncpg.Connection, role: str, table: str) -> set[str]:
    every = (*ROW_PRIVILEGES, *OTHER_PRIVILEGES)
    held = await connection.fetchrow(
        "SELECT " + ", ".join(f"has_table_privilege($1, $2, '{p}') AS has_{p}" for p in every),
        role,
        table,
    )
    return {p for p in every if held[f"has_{p.lower()}"]}


async def grant(roles: LeastPrivilegeDatabase, role: str | None = None) -> Any:
    return await asyncio.to_thread(grant_app_role, roles.migration_url, role or roles.app)


async def test_the_app_role_gets_rows_and_sequences_and_nothing_else(
    roles: LeastPrivilegeDatabase, as_migration: asyncpg.Connection
) -> None:
    assert await privileges(as_migration, roles.app, "jobs") == set()

    summary = await grant(roles)

    assert summary.role == roles.app
    assert summary.schema == "public"
    assert summary.tables >= len(TABLES) + 1  # and alembic_version
    for table in TABLES:
        assert await privileges(as_migration, roles.app, table) == set(ROW_PRIVILEGES), table
    assert await privileges(as_migration, roles.app, "alembic_version") == {"SELECT"}
    sequences = await as_migration.fetch(
        "SELECT c.oid::regclass::text AS name FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND n.nspname = 'public'"
    )
    assert sequences, "job_events and outbox ids come from sequences"
    for row in sequences:
        assert await as_migration.fetchval(
            "SELECT has_sequence_privilege($1, $2, 'USAGE')", roles.app, row["name"]
        )
        assert not await as_migration.fetchval(
            "SELECT has_sequence_privilege($1, $2, 'UPDATE')", roles.app, row["name"]
        )
    assert await as_migration.fetchval(
        "SELECT has_schema_privilege($1, 'public', 'USAGE')", roles.app
    )
    assert not await as_migration.fetchval(
        "SELECT has_schema_privilege($1, 'public', 'CREATE')", roles.app
    )
    assert not await as_migration.fetchval(
        "SELECT has_database_privilege($1, current_database(), 'CREATE')", roles.app
    )


async def test_the_app_role_can_do_its_work_and_no_ddl(roles: LeastPrivilegeDatabase) -> None:
    await grant(roles)
    app = await asyncpg.connect(roles.app_url)
    try:
        # Serial ids come from sequences it may use.
        assert await app.fetchval("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))") >= 1
        assert await app.fetchval("SELECT count(*) FROM jobs") == 0
        for statement in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE jobs",
            "TRUNCATE outbox",
            "ALTER TABLE jobs ADD COLUMN intruder int",
            "CREATE SCHEMA intruder",
            "DELETE FROM alembic_version",
        ):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await app.execute(statement)
    finally:
        await app.close()


async def test_tables_created_later_are_covered_and_rerunning_narrows_again(
    roles: LeastPrivilegeDatabase, as_migration: asyncpg.Connection
) -> None:
    await grant(roles)
    # A table a later migration (or an operator, as the migration role) adds before the next
    # run: default privileges cover it at once.
    await as_migration.execute("CREATE TABLE later_table (id bigserial PRIMARY KEY)")
    assert await privileges(as_migration, roles.app, "later_table") == set(ROW_PRIVILEGES)
    assert await as_migration.fetchval(
        "SELECT has_sequence_privilege($1, 'later_table_id_seq', 'USAGE')", roles.app
    )

    # Someone widened the grants by hand; the next migrate narrows them back, and running it
    # again changes nothing.
    await as_migration.execute(f"GRANT ALL ON jobs, alembic_version TO {roles.app}")
    await as_migration.execute(f"GRANT CREATE ON SCHEMA public TO {roles.app}")
    await grant(roles)
    await grant(roles)
    assert await privileges(as_migration, roles.app, "jobs") == set(ROW_PRIVILEGES)
    assert await privileges(as_migration, roles.app, "alembic_version") == {"SELECT"}
    assert not await as_migration.fetchval(
        "SELECT has_schema_privilege($1, 'public', 'CREATE')", roles.app
    )


async def test_roles_that_could_never_be_least_privilege_are_refused(
    roles: LeastPrivilegeDatabase, as_migration: asyncpg.Connection, as_admin: asyncpg.Connection
) -> None:
    with pytest.raises(GrantError, match="no such role"):
        await grant(roles, "conveyor_nobody_here")
    with pytest.raises(GrantError, match="inherits"):
        await grant(roles, roles.migration)
    with pytest.raises(GrantError, match="plain PostgreSQL role name"):
        await grant(roles, 'app"; DROP TABLE jobs; --')
    # An application role that owns a table could alter or drop it.
    await as_admin.execute(f"ALTER TABLE outbox OWNER TO {roles.app}")
    with pytest.raises(GrantError, match="owns 1 table"):
        await grant(roles)
    await as_admin.execute(f"ALTER TABLE outbox OWNER TO {roles.migration}")
    await as_admin.execute(f"GRANT {roles.migration} TO {roles.app}")
    with pytest.raises(GrantError, match="inherits"):
        await grant(roles)
    assert await as_migration.fetchval("SELECT count(*) FROM jobs") == 0


def test_sqlite_has_no_roles_so_nothing_is_granted(tmp_path: Path) -> None:
    assert grant_app_role(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "conveyor_app") is None


def test_the_migrate_command_grants_as_configured(roles: LeastPrivilegeDatabase) -> None:
    """The CLI path: migration URL, application role, and the log line saying so."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        "CONVEYOR_DATABASE_URL": roles.app_url,  # what job-service serves with: unused here
        "CONVEYOR_DATABASE_MIGRATION_URL": roles.migration_url,
        "CONVEYOR_DATABASE_APP_ROLE": roles.app,
        "CONVEYOR_LOG_JSON": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "job_service", "migrate"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"migrations.grants_applied"' in done.stderr
    assert roles.app in done.stderr


def test_the_migrate_command_fails_cleanly_when_the_role_is_missing(
    roles: LeastPrivilegeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_MIGRATION_URL", roles.migration_url)
    monkeypatch.setenv("CONVEYOR_DATABASE_APP_ROLE", "conveyor_nobody_here")
    # In-process: leave the test process's logging set-up alone.
    monkeypatch.setattr(cli, "configure_logging", lambda *_a, **_k: None)
    assert cli.main(["migrate"]) == 2
