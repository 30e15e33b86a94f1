"""Server-side counters: PostgreSQL statements and transactions, Redis commands.

PostgreSQL: `pg_stat_statements` (calls per normalised statement, BEGIN/COMMIT included) when
the server has it loaded, and `pg_stat_database` (commits, rows) always, for the bench's
database only. The bench's own queries carry the marker `conveyor-bench` and are left out.
Redis: `INFO commandstats`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

BENCH_MARKER = "/* conveyor-bench */"

_STATEMENTS = f"""{BENCH_MARKER}
SELECT query, calls, rows FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%conveyor-bench%'"""
_DATABASE = f"""{BENCH_MARKER}
SELECT * FROM pg_stat_database WHERE datname = current_database()"""
_DATABASE_FIELDS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
                    "sessions")  # fmt: skip


@dataclass(frozen=True)
class PgCounters:
    statements: dict[str, tuple[int, int]] | None  # query -> (calls, rows); None: unavailable
    database: dict[str, int]
    bench_queries: int  # the bench's own queries so far (each one transaction)


@dataclass
class PgProbe:
    """One connection of the bench's to its database, for counters and polling."""

    conn: asyncpg.Connection
    statements_available: bool = False
    queries: int = 0

    @classmethod
    async def connect(cls, url: str) -> PgProbe:
        conn = await asyncpg.connect(url, server_settings={"application_name": "conveyor-bench"})
        probe = cls(conn)
        try:
            await conn.execute(f"{BENCH_MARKER} CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.fetch(f"{BENCH_MARKER} SELECT 1 FROM pg_stat_statements LIMIT 1")
            probe.statements_available = True
        except asyncpg.PostgresError:
            probe.statements_available = False
        return probe

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.queries += 1
        return await self.conn.fetchval(f"{BENCH_MARKER} {query}", *args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.queries += 1
        return list(await self.conn.fetch(f"{BENCH_MARKER} {query}", *args))

    async def counters(self) -> PgCounters:
        statements: dict[str, tuple[int, int]] | None = None
        if self.statements_available:
            rows = await self.conn.fetch(_STATEMENTS)
            statements = {}
            for row in rows:
                calls, count = statements.get(row["query"], (0, 0))
                statements[row["query"]] = (calls + row["calls"], count + row["rows"])
        database_row = await self.conn.fetchrow(_DATABASE)
        # The two reads above are two transactions of our own.
        self.queries += 2
        row = dict(database_row or {})
        # `sessions` exists from PostgreSQL 14 on.
        database = {k: int(row[k] or 0) for k in _DATABASE_FIELDS if k in row}
        return PgCounters(statements, database, self.queries)

    async def server_version(self) -> str:
        return str(await self.conn.fetchval(f"{BENCH_MARKER} SHOW server_version"))

    async def close(self) -> None:
        await self.conn.close()


@dataclass
class PgDelta:
    statements: int | None
    transactions: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    sessions: int | None  # connections opened (PostgreSQL >= 14), the bench's none
    top_statements: list[dict[str, Any]] = field(default_factory=list)


def pg_delta(before: PgCounters, after: PgCounters) -> PgDelta:
    own = after.bench_queries - before.bench_queries
    transactions = (
        after.database.get("xact_commit", 0)
        + after.database.get("xact_rollback", 0)
        - before.database.get("xact_commit", 0)
        - before.database.get("xact_rollback", 0)
        - own
    )
    statements: int | None = None
    top: list[dict[str, Any]] = []
    if before.statements is not None and after.statements is not None:
        changes = []
        for query, (calls, rows) in after.statements.items():
            calls0, rows0 = before.statements.get(query, (0, 0))
            if calls > calls0:
                changes.append((calls - calls0, rows - rows0, query))
        statements = sum(c for c, _, _ in changes)
        changes.sort(reverse=True)
        top = [
            {"calls": c, "rows": r, "query": " ".join(q.split())[:160]} for c, r, q in changes[:12]
        ]
    return PgDelta(
        statements=statements,
        transactions=max(0, transactions),
        rows_inserted=after.database.get("tup_inserted", 0)
        - before.database.get("tup_inserted", 0),
        rows_updated=after.database.get("tup_updated", 0) - before.database.get("tup_updated", 0),
        rows_deleted=after.database.get("tup_deleted", 0) - before.database.get("tup_deleted", 0),
        sessions=(
            after.database["sessions"] - before.database["sessions"]
            if "sessions" in after.database and "sessions" in before.database
            else None
        ),
        top_statements=top,
    )


async def redis_commandstats(client: aioredis.Redis) -> dict[str, int]:
    """Calls per command so far (`cmdstat_xadd` -> `xadd`)."""
    info = await client.info("commandstats")
    calls: dict[str, int] = {}
    for key, value in info.items():
        name = str(key).removeprefix("cmdstat_")
        if isinstance(value, dict):
            calls[name] = int(value.get("calls", 0))
    return calls


def redis_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changes = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
    return dict(sorted(changes.items(), key=lambda kv: -kv[1]))
