"""Throwaway PostgreSQL databases for tests whose rows other processes must see committed
(end-to-end and fault tests run job-service as a separate process)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs `coro` to completion from sync code, also when called inside a running event loop
    (an async test), by giving it a loop on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _plain(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(_plain(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy async form (`postgresql+asyncpg://...`) services take as
    `CONVEYOR_DATABASE_URL`."""
    return "postgresql+asyncpg://" + _plain(url).split("://", 1)[1]


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected database name {name!r}")
    return f'"{name}"'


async def _execute(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def fresh_database(admin_url: str, prefix: str = "conveyor_e2e_") -> str:
    """Creates an empty database `<prefix><hex>` on the server of `admin_url` and returns its
    plain `postgresql://` URL. Drop it with `drop_database`."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    _run(_execute(admin_url, f"CREATE DATABASE {_quoted(name)}"))
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drops the database of `url`, closing any connection still open to it."""
    name = database_name(_plain(url))
    _run(_execute(admin_url, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))


def as_role(url: str, role: str, password: str) -> str:
    """`url` (plain `postgresql://`) logging in as `role` instead."""
    parts = urlsplit(_plain(url))
    hostport = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{hostport}"))


@dataclass(frozen=True)
class LeastPrivilegeDatabase:
    """A database owned by `migration`, and `app`, a role with nothing granted on it yet."""

    database: str
    migration: str
    app: str
    migration_url: str  # plain postgresql:// URLs with the roles' passwords
    app_url: str


@contextmanager
def least_privilege_database(admin_url: str) -> Iterator[LeastPrivilegeDatabase]:
    """The set-up docs/security.md has an operator make once, as a superuser: a migration role
    owning a fresh database and its `public` schema (nobody else may create there), and an
    application role. Roles are cluster-wide, so their names are unique per call; the database
    and both roles are dropped on exit."""
    suffix = uuid.uuid4().hex[:10]
    migration, app = f"conveyor_migrate_{suffix}", f"conveyor_app_{suffix}"
    passwords = {migration: secrets.token_hex(16), app: secrets.token_hex(16)}
    url = fresh_database(admin_url, prefix="conveyor_lp_")
    try:
        _run(
            _execute(
                admin_url,
                *(f"CREATE ROLE {_quoted(r)} LOGIN PASSWORD '{p}'" for r, p in passwords.items()),
                f"ALTER DATABASE {_quoted(database_name(url))} OWNER TO {_quoted(migration)}",
            )
        )
        _run(
            _execute(
                url,
                f"ALTER SCHEMA public OWNER TO {_quoted(migration)}",
                # PostgreSQL 15+ does this by default; older versions let everyone create there.
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            )
        )
        yield LeastPrivilegeDatabase(
            database=database_name(url),
            migration=migration,
            app=app,
            migration_url=as_role(url, migration, passwords[migration]),
            app_url=as_role(url, app, passwords[app]),
        )
    finally:
        drop_database(admin_url, url)
        _run(_execute(admin_url, *(f"DROP ROLE IF EXISTS {_quoted(r)}" for r in (app, migration))))
