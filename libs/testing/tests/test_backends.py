"""The fixtures hand out servers that answer, whichever source they come from."""

import asyncpg
import redis


async def test_postgres_backend_answers(postgres_backend):
    conn = await asyncpg.connect(postgres_backend.url)
    try:
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()


def test_redis_namespace_is_cleaned(redis_backend, redis_namespace, redis_client: redis.Redis):
    redis_client.set(f"{redis_namespace}:probe", "1")
    assert redis_client.get(f"{redis_namespace}:probe") == b"1"
