"""What the least-privilege application role may do, granted by `python -m job_service migrate`.

Migrations run as a role that owns the schema; job-service runs as another role that may read
and write rows and nothing else: no DDL, no ownership, no TRUNCATE, no CREATE in the schema or
the database, and only SELECT on Alembic's version table. The grants are replayed on every
migrate run, in one transaction, so a table added by a new migration is covered at once and
privileges someone widened by hand are narrowed again; ALTER DEFAULT PRIVILEGES covers tables
the migration role creates later by other means. SQLite has no roles: nothing to do there."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from job_service.config import ROLE_NAME
from job_service.db import build_engine, is_sqlite

ALEMBIC_VERSION_TABLE = "alembic_version"
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"


class GrantError(RuntimeError):
    """The application role is missing, or could never be least-privilege as configured."""


@dataclass(frozen=True, slots=True)
class GrantSummary:
    role: str
    database: str
    schema: str
    tables: int


def grant_statements(
    quote: QuoteIdentifier, *, role: str, database: str, schema: str, version_table: bool
) -> list[str]:
    """The statements, in order. Every privilege is revoked before it is granted again, inside
    one transaction, so the result is exactly this set whatever was there before, and running
    job-service sessions never see a moment without it."""
    r, d, s = quote(role), quote(database), quote(schema)
    statements = [
        f"GRANT CONNECT ON DATABASE {d} TO {r}",
        # CREATE on the database would let the role make schemas of its own.
        f"REVOKE CREATE ON DATABASE {d} FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {TABLE_PRIVILEGES} ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {r}",
    ]
    if version_table:
        # Readable (a readiness check may compare revisions), never writable: only migrations
        # move the schema's revision.
        statements.append(
            f"REVOKE INSERT, UPDATE, DELETE ON TABLE {s}.{quote(ALEMBIC_VERSION_TABLE)} FROM {r}"
        )
    return statements


class QuoteIdentifier:
    """SQLAlchemy's PostgreSQL identifier quoting: always double-quoted, quotes doubled."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._preparer = connection.dialect.identifier_preparer

    def __call__(self, name: str) -> str:
        return self._preparer.quote_identifier(name)


async def _check_role(connection: AsyncConnection, role: str, schema: str) -> None:
    row = (
        await connection.execute(
            text(
                "SELECT r.rolsuper, pg_has_role(r.oid, current_user, 'USAGE') AS inherits, "
                "(SELECT count(*) FROM pg_tables t WHERE t.schemaname = :schema "
                " AND t.tableowner = r.rolname) AS owned "
                "FROM pg_roles r WHERE r.rolname = :role"
            ),
            {"role": role, "schema": schema},
        )
    ).one_or_none()
    if row is None:
        raise GrantError(
            f"CONVEYOR_DATABASE_APP_ROLE={role}: no such role; create it first "
            "(docs/security.md, 'PostgreSQL: migration role and application role')"
        )
    if row.rolsuper:
        raise GrantError(f"CONVEYOR_DATABASE_APP_ROLE={role} is a superuser")
    if row.inherits:
        # The migration role itself, or a member of it: it would own every table.
        raise GrantError(
            f"CONVEYOR_DATABASE_APP_ROLE={role} is, or inherits the privileges of, the role "
            "migrations run as; use a separate role"
        )
    if row.owned:
        raise GrantError(
            f"CONVEYOR_DATABASE_APP_ROLE={role} owns {row.owned} table(s) in schema {schema}; "
            "transfer them to the migration role (ALTER TABLE ... OWNER TO)"
        )


async def _grant(database_url: str, role: str) -> GrantSummary:
    engine = build_engine(database_url)
    try:
        async with engine.begin() as connection:
            info = (
                await connection.execute(
                    text(
                        "SELECT current_database() AS database, current_schema() AS schema, "
                        "to_regclass(:version) IS NOT NULL AS has_version, "
                        "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()) "
                        "AS tables"
                    ),
                    {"version": ALEMBIC_VERSION_TABLE},
                )
            ).one()
            await _check_role(connection, role, info.schema)
            statements = grant_statements(
                QuoteIdentifier(connection),
                role=role,
                database=info.database,
                schema=info.schema,
                version_table=info.has_version,
            )
            for statement in statements:
                await connection.execute(text(statement))
        return GrantSummary(role=role, database=info.database, schema=info.schema,
                            tables=info.tables)  # fmt: skip
    finally:
        await engine.dispose()


def grant_app_role(database_url: str, role: str) -> GrantSummary | None:
    """Grants `role` what job-service needs on the database of `database_url` (connected as the
    migration role). Blocking: runs its own event loop. None on SQLite, which has no roles."""
    if not ROLE_NAME.fullmatch(role):
        raise GrantError(f"{role!r} is not a plain PostgreSQL role name")
    if is_sqlite(database_url):
        return None
    return asyncio.run(_grant(database_url, role))
