import asyncpg, redis
async def test_pg(postgres_backend):
    conn = await asyncpg.connect(postgres_backend.url)
    print(postgres_backend, await conn.fetchval("select version()"))
    await conn.close()
def test_redis(redis_client, redis_backend):
    print(redis_backend); assert redis_client.ping()
