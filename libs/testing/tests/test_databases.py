"""`fresh_database` / `drop_database`: a database of the test's own on the session's server."""

import asyncpg
import pytest

from conveyor_testing.databases import (
    asyncpg_url,
    database_name,
    drop_database,
    fresh_database,
    with_database,
)


async def _exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("select 1 from pg_database where datname = $1", name))
    finally:
        await conn.close()


async def test_create_use_and_drop(postgres_backend):
    url = fresh_database(postgres_backend.url)
    name = database_name(url)
    assert name.startswith("conveyor_e2e_")
    conn = await asyncpg.connect(url)  # an open connection must not block the drop
    try:
        assert await conn.fetchval("select current_database()") == name
        assert await _exists(postgres_backend.url, name)
        drop_database(postgres_backend.url, url)
    finally:
        await conn.close()
    assert not await _exists(postgres_backend.url, name)


def test_urls():
    admin = "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable"
    url = with_database(admin, "conveyor_e2e_ab12")
    assert url == "postgresql://postgres@127.0.0.1:5432/conveyor_e2e_ab12?sslmode=disable"
    assert database_name(url) == "conveyor_e2e_ab12"
    assert asyncpg_url(url).startswith("postgresql+asyncpg://postgres@127.0.0.1:5432/")


def test_refuses_odd_names(postgres_backend):
    with pytest.raises(ValueError, match="database name"):
        drop_database(postgres_backend.url, with_database(postgres_backend.url, 'x"; drop'))
