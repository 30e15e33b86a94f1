"""Per-tenant rate limits counted in the real Redis (the test's namespace), shared by replicas,
never applied to health, metrics or docs, and failing open when Redis is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

pytestmark = pytest.mark.integration

RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


async def flood(gateway: httpx.AsyncClient, key: str, count: int) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(gateway.get("/v1/tasks", headers=bearer(key)) for _ in range(count)))
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_flooding_tenant_is_limited_and_another_is_not(
    open_gateway: Any, double: Any, keys: Any
) -> None:
    async with open_gateway(rate_limit="5/hour") as gateway:
        flooded = await flood(gateway, keys.read, 20)  # tenant acme
        other = [
            await gateway.get("/v1/tasks", headers=bearer(keys.other_tenant)) for _ in range(5)
        ]  # tenant globex, one at a time

    assert sorted(statuses(flooded)) == [200] * 5 + [429] * 15
    assert statuses(other) == [200] * 5
    assert [r.headers["ratelimit-remaining"] for r in other] == ["4", "3", "2", "1", "0"]
    # Refused requests never reached job-service.
    assert len(double.calls_to("/internal/v1/tasks")) == 10


async def test_answers_carry_rate_limit_headers(open_gateway: Any, double: Any, keys: Any) -> None:
    async with open_gateway(rate_limit="2/hour") as gateway:
        answers = [await gateway.get("/v1/tasks", headers=bearer(keys.read)) for _ in range(3)]

    ok, last_ok, limited = answers
    assert statuses(answers) == [200, 200, 429]
    for response in answers:
        assert response.headers["ratelimit-limit"] == "2"
        assert response.headers["ratelimit-policy"] == "2;w=3600"
    assert ok.headers["ratelimit-remaining"] == "1"
    assert last_ok.headers["ratelimit-remaining"] == "0"
    assert 0 < int(ok.headers["ratelimit-reset"]) <= 3600

    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["ratelimit-remaining"] == "0"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert limited.headers["ratelimit-reset"] == str(retry_after)
    problem = limited.json()
    assert problem["type"] == "urn:conveyor:problem:rate-limited"
    assert problem["status"] == 429
    assert problem["extra"] == {"limit": "2 per 1 hour", "retry_after_seconds": retry_after}
    assert problem["request_id"] == limited.headers["x-request-id"]


async def test_the_tightest_of_several_limits_is_reported(
    open_gateway: Any, double: Any, keys: Any
) -> None:
    async with open_gateway(rate_limit="3/minute;10/hour") as gateway:
        answers = [await gateway.get("/v1/tasks", headers=bearer(keys.read)) for _ in range(4)]

    assert statuses(answers) == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[0].headers["ratelimit-remaining"] == "2"
    assert answers[0].headers["ratelimit-policy"] == "3;w=60, 10;w=3600"
    assert answers[3].json()["extra"]["limit"] == "3 per 1 minute"


async def test_errors_after_the_limit_check_carry_the_headers_too(
    open_gateway: Any, double: Any, keys: Any
) -> None:
    async with open_gateway(rate_limit="5/hour") as gateway:
        forbidden = await gateway.post("/v1/jobs", json={"task": "echo"}, headers=bearer(keys.read))
        missing = await gateway.get(
            "/v1/jobs/00000000-0000-0000-0000-000000000000", headers=bearer(keys.read)
        )

    assert forbidden.status_code == 403
    assert forbidden.headers["ratelimit-remaining"] == "4"
    assert missing.status_code == 404
    assert missing.headers["ratelimit-remaining"] == "3"


async def test_replicas_share_one_budget_per_tenant(
    open_gateway: Any, double: Any, keys: Any
) -> None:
    async with (
        open_gateway(rate_limit="6/hour") as first,
        open_gateway(rate_limit="6/hour") as second,
    ):
        answers = []
        for _ in range(5):
            answers.append(await first.get("/v1/tasks", headers=bearer(keys.read)))
            answers.append(await second.get("/v1/tasks", headers=bearer(keys.read)))

    assert statuses(answers) == [200] * 6 + [429] * 4


async def test_per_tenant_overrides(open_gateway: Any, double: Any, keys: Any) -> None:
    overrides = {"acme": "unlimited", "globex": "2/hour"}
    async with open_gateway(rate_limit="5/hour", rate_limit_overrides=overrides) as gateway:
        acme = await flood(gateway, keys.read, 12)
        globex = [
            await gateway.get("/v1/tasks", headers=bearer(keys.other_tenant)) for _ in range(3)
        ]

    assert statuses(acme) == [200] * 12
    assert not any(h in r.headers for r in acme for h in RATE_HEADERS)
    assert statuses(globex) == [200, 200, 429]
    assert globex[0].headers["ratelimit-limit"] == "2"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"])
async def test_health_metrics_and_docs_are_never_limited(
    open_gateway: Any, double: Any, keys: Any, path: str
) -> None:
    async with open_gateway(rate_limit="1/hour") as gateway:
        # The tenant is already over its limit...
        await gateway.get("/v1/tasks", headers=bearer(keys.read))
        assert (await gateway.get("/v1/tasks", headers=bearer(keys.read))).status_code == 429
        # ...and these answer regardless, with or without its key.
        answers = [await gateway.get(path, headers=bearer(keys.read)) for _ in range(3)]
        answers += [await gateway.get(path) for _ in range(3)]

    assert statuses(answers) == [200] * 6
    assert not any(h in r.headers for r in answers for h in RATE_HEADERS)


async def test_unauthenticated_requests_are_not_counted(
    open_gateway: Any, double: Any, keys: Any
) -> None:
    async with open_gateway(rate_limit="1/hour") as gateway:
        for _ in range(3):
            assert (await gateway.get("/v1/tasks")).status_code == 401
        assert (await gateway.get("/v1/tasks", headers=bearer(keys.read))).status_code == 200


async def test_counters_live_under_the_namespace(
    open_gateway: Any, double: Any, keys: Any, redis_client: redis.Redis, redis_namespace: str
) -> None:
    async with open_gateway(rate_limit="5/hour") as gateway:
        await gateway.get("/v1/tasks", headers=bearer(keys.read))

    counters = redis_client.keys(f"{redis_namespace}:ratelimit:*")
    assert counters
    assert all(b"/acme/" in key for key in counters)
    assert all(redis_client.ttl(key) > 0 for key in counters)  # they expire by themselves


async def test_unreachable_redis_fails_open(
    open_gateway: Any, double: Any, keys: Any, unused_port: int
) -> None:
    failures = metric("conveyor_rate_limit_failures_total")
    unchecked = metric("conveyor_rate_limit_decisions_total", decision="unchecked")
    with capture_logs() as logs:
        async with open_gateway(
            rate_limit="1/hour", redis_url=f"redis://127.0.0.1:{unused_port}/0"
        ) as gateway:
            answers = [await gateway.get("/v1/tasks", headers=bearer(keys.read)) for _ in range(5)]

    assert statuses(answers) == [200] * 5
    assert not any(h in r.headers for r in answers for h in RATE_HEADERS)
    # Logged and counted once, then Redis is left alone for the retry interval.
    assert [e["event"] for e in logs].count("ratelimit.unavailable") == 1
    assert metric("conveyor_rate_limit_failures_total") == failures + 1
    assert metric("conveyor_rate_limit_decisions_total", decision="unchecked") == unchecked + 5


async def test_limits_resume_when_redis_returns(
    open_gateway: Any, double: Any, keys: Any, own_redis_server: Any
) -> None:
    server = own_redis_server()
    async with open_gateway(
        rate_limit="100/hour", redis_url=server.url, rate_limit_retry_seconds=0
    ) as gateway:
        before = await gateway.get("/v1/tasks", headers=bearer(keys.read))
        server.stop()
        during = await gateway.get("/v1/tasks", headers=bearer(keys.read))
        server.start()
        after = await gateway.get("/v1/tasks", headers=bearer(keys.read))

    assert statuses([before, during, after]) == [200, 200, 200]
    assert before.headers["ratelimit-remaining"] == "99"
    assert "ratelimit-remaining" not in during.headers
    # The restarted Redis kept nothing (no persistence): counting starts again.
    assert after.headers["ratelimit-remaining"] == "99"


async def test_rate_limiting_can_be_switched_off(open_gateway: Any, double: Any, keys: Any) -> None:
    async with open_gateway(rate_limit="1/hour", rate_limit_enabled=False) as gateway:
        answers = await flood(gateway, keys.read, 5)
    assert statuses(answers) == [200] * 5
    assert gateway.app.state.rate_limiter is None
