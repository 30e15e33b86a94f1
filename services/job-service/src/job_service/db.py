"""Engine and session helpers, and the one unit of work per request.

`SessionDep` commits when the endpoint returned and rolls back when it raised; services and
repositories only `flush()`. Work that must happen after the commit (waking the outbox relay)
is registered with `after_commit` and run by the dependency once the commit succeeded."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from conveyor_common.web import IDEMPOTENCY_KEY_HEADER
from job_service.config import CONNECTION_NAME, Settings

_AFTER_COMMIT_KEY = "conveyor_after_commit"
_CHECKED_IN_AT = "conveyor_checked_in_at"
# A pooled connection unused for this long is pinged before use (see `_ping_when_idle`).
IDLE_PING_SECONDS = 10.0

_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def async_database_url(url: str) -> URL:
    """The URL with an async driver: `postgresql://` becomes `postgresql+asyncpg://`."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def is_sqlite(url: URL | str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(settings: Settings) -> AsyncEngine:
    """The service's engine. Its timeouts are short so that a database that is down or stuck
    turns a request into a quick 503 (see http.py) rather than a hang."""
    return build_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        connect_timeout=settings.database_connect_timeout_seconds,
        command_timeout=settings.database_command_timeout_seconds,
        pool_timeout=settings.database_pool_timeout_seconds,
    )


def build_engine(
    database_url: str,
    *,
    pool_size: int = 5,
    sqlite_busy_timeout_ms: int = 10_000,
    connect_timeout: float = 5.0,
    command_timeout: float | None = None,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """Without `command_timeout` a statement may run as long as it needs (migrations)."""
    url = async_database_url(database_url)
    if is_sqlite(url):
        engine = create_async_engine(url, hide_parameters=True)
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    engine = create_async_engine(
        url,
        # Job arguments may carry secrets: keep them out of exception messages and logs.
        hide_parameters=True,
        pool_size=pool_size,
        # No overflow: an overflow connection is closed as soon as it is returned, so a load
        # just above `pool_size` opened and closed a PostgreSQL connection (a backend fork and
        # a TLS attempt) per request — most of the CPU of single submits from 32 clients.
        # Past `pool_size` a checkout waits its turn (`pool_timeout`) instead.
        max_overflow=0,
        # Not `pool_pre_ping`: on asyncpg it is BEGIN, `;`, ROLLBACK — three round trips on
        # every checkout, most of the event reader's cost. `_ping_when_idle` pings only a
        # connection that sat unused, which is when a database restart can have killed it.
        pool_pre_ping=False,
        # The most recently returned connection is reused first: the few in steady use are never
        # idle long enough to be pinged; the rest wait idle, and are pinged if ever drawn again.
        pool_use_lifo=True,
        pool_recycle=1_800,
        pool_timeout=pool_timeout,
        connect_args={
            "server_settings": {"application_name": CONNECTION_NAME},
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
        },
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """A connection idle longer than `IDLE_PING_SECONDS` is pinged when drawn from the pool and
    replaced if it is dead. One in steady use is not: if the database restarted meanwhile, the
    statement that meets the dead connection fails (a 503) and SQLAlchemy invalidates the whole
    pool, so the requests after it get fresh connections."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN_AT)
        if checked_in is None or time.monotonic() - checked_in < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and draws (or opens) another.
            raise DisconnectionError("pooled connection is dead") from exc


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN handling is off so we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads then writes can't wait
        # for the lock (SQLITE_BUSY at once), while BEGIN IMMEDIATE waits up to busy_timeout.
        # SQLite has no SELECT ... FOR UPDATE; this is what serialises the relay, the event
        # reader and the promoter there.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def autocommit_sessionmaker(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession] | None:
    """On PostgreSQL, sessions whose every statement is its own transaction: no BEGIN and
    COMMIT round trips around work that is one statement, or reads that lock nothing (a
    background loop's "anything to do?"). None on SQLite, whose writers must BEGIN IMMEDIATE."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        return None
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )


AfterCommit = Callable[[], None] | Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Runs `callback` once the request's unit of work has committed (never on rollback), before
    the response is sent; an async callback is awaited. A callback must not raise."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


async def get_submit_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The session of a submit. Without an `Idempotency-Key` a submit is one statement (jobs
    and outbox rows in one INSERT, see the repository), which PostgreSQL commits on its own, so
    the session runs in autocommit: no BEGIN and COMMIT round trips, two of a single submit's
    three. With a key it reads, inserts and may read again: one transaction, as everywhere."""
    maker = request.app.state.sessionmaker
    if IDEMPOTENCY_KEY_HEADER not in request.headers:
        maker = request.app.state.autocommit_sessionmaker or maker
    async with unit_of_work(maker) as session:
        yield session


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Commits when the block ends, rolls back when it raises; then runs `after_commit`'s
    callbacks."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        for callback in session.info.pop(_AFTER_COMMIT_KEY, []):
            result = callback()
            if inspect.isawaitable(result):
                await result


# scope="function": the commit happens before the response is sent, so a failed commit is the
# client's error response rather than a 202 for a job that does not exist.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SubmitSessionDep = Annotated[AsyncSession, Depends(get_submit_session, scope="function")]
