"""One tenant floods the whole stack while another works normally (issue 4, "Done when").

The gateway's per-tenant limit is set low, so the flooding tenant runs far over it while the
other stays well within the same limit: the first gets 429 problems, the second none, health and
metrics answer throughout, and every job either tenant had accepted still runs to the end."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from conveyor_devstack.stack import Stack
from conveyor_testing.api import auth, wait_all_final

from .support import KeyMaker

pytestmark = [pytest.mark.e2e]

LIMIT_PER_SECOND = 10
# The other tenant's pace: a quarter of the limit, so only a limiter that mixed tenants up
# could refuse it.
CALM_INTERVAL_SECONDS = 4 / LIMIT_PER_SECOND
# The flood runs for a set time rather than a set count, so a slow machine floods too.
FLOOD_SECONDS = 3.0
FLOOD_CONCURRENCY = 16
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy")


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # Only a per-second limit: the flood fills it within the test, and it frees within seconds.
    return {"extra_env": {"CONVEYOR_RATE_LIMIT": f"{LIMIT_PER_SECOND}/second"}}


@pytest.fixture(scope="module")
def tenant_keys(module_stack: Stack) -> tuple[str, str]:
    """Keys of two tenants: the one that floods and its neighbour."""
    maker = KeyMaker(module_stack.config.database_url)
    suffix = uuid.uuid4().hex[:8]
    return (
        maker.create(f"flood-{suffix}").plaintext,
        maker.create(f"calm-{suffix}").plaintext,
    )


@dataclass
class Traffic:
    responses: list[httpx.Response] = field(default_factory=list)

    def accepted_job_ids(self) -> list[str]:
        return [
            r.json()["id"]
            for r in self.responses
            if r.request.method == "POST" and r.status_code == 202
        ]

    def limited(self) -> list[httpx.Response]:
        return [r for r in self.responses if r.status_code == 429]

    def statuses(self) -> set[int]:
        return {r.status_code for r in self.responses}


async def flood(client: httpx.AsyncClient, key: str, traffic: Traffic) -> None:
    """Submissions with reads mixed in, FLOOD_CONCURRENCY at a time, as fast as they go, for
    FLOOD_SECONDS."""
    deadline = time.monotonic() + FLOOD_SECONDS
    counter = iter(range(1_000_000))

    async def sender() -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            if n % 4 == 3:
                path = "/v1/jobs" if n % 8 == 3 else "/v1/tasks"
                traffic.responses.append(await client.get(path, headers=auth(key)))
            else:
                traffic.responses.append(
                    await client.post(
                        "/v1/jobs", json={"task": "echo", "args": {"n": n}}, headers=auth(key)
                    )
                )

    await asyncio.gather(*(sender() for _ in range(FLOOD_CONCURRENCY)))


async def calm(client: httpx.AsyncClient, key: str, traffic: Traffic, done: asyncio.Event) -> None:
    """One request at a time at a quarter of the limit, submissions and reads, until `done`."""
    n = 0
    while not done.is_set() or n < 4:
        if n % 3 == 2:
            traffic.responses.append(await client.get("/v1/jobs", headers=auth(key)))
        else:
            traffic.responses.append(
                await client.post(
                    "/v1/jobs", json={"task": "echo", "args": {"calm": n}}, headers=auth(key)
                )
            )
        n += 1
        await asyncio.sleep(CALM_INTERVAL_SECONDS)


async def probe_health(stack: Stack, key: str, traffic: Traffic, done: asyncio.Event) -> None:
    """The gateway's health, readiness and metrics, with and without the flooding tenant's key."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10.0) as client:
        n = 0
        while not done.is_set() or n < 6:
            path = ("/healthz", "/readyz", "/metrics")[n % 3]
            headers = auth(key) if n % 2 else {}
            traffic.responses.append(await client.get(path, headers=headers))
            n += 1
            await asyncio.sleep(0.05)


def wait_until_free(limited: list[httpx.Response]) -> None:
    """The flooding tenant's own reads would be refused until its window has passed."""
    time.sleep(max(int(r.headers["retry-after"]) for r in limited) + 0.2)


async def test_a_flooding_tenant_is_limited_while_another_works_and_no_job_is_lost(
    module_stack: Stack, tenant_keys: tuple[str, str]
) -> None:
    flooder, neighbour = tenant_keys
    flooding, calming, health = Traffic(), Traffic(), Traffic()
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=FLOOD_CONCURRENCY + 4)

    async with httpx.AsyncClient(
        base_url=module_stack.gateway_url, timeout=30.0, limits=limits
    ) as client:
        calm_task = asyncio.create_task(calm(client, neighbour, calming, done))
        health_task = asyncio.create_task(probe_health(module_stack, flooder, health, done))
        await asyncio.sleep(0.2)  # the neighbour is already working when the flood starts
        started = time.monotonic()
        await flood(client, flooder, flooding)
        flood_seconds = time.monotonic() - started
        done.set()
        await asyncio.gather(calm_task, health_task)

    # The flood ran over the limit and was refused with the documented problem; what got
    # through stayed within the limit (a window of slack at each end of the flood).
    limited = flooding.limited()
    served = len(flooding.responses) - len(limited)
    assert limited, f"no 429 in {len(flooding.responses)} requests over {flood_seconds:.1f}s"
    assert served <= LIMIT_PER_SECOND * (flood_seconds + 2), (served, flood_seconds)
    assert flooding.statuses() <= {200, 202, 429}, flooding.statuses()
    for response in limited:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:conveyor:problem:rate-limited"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["ratelimit-limit"] == str(LIMIT_PER_SECOND)
        assert response.headers["ratelimit-remaining"] == "0"
        assert all(h in response.headers for h in RATE_HEADERS)
    accepted_flood = flooding.accepted_job_ids()
    assert accepted_flood, "the flooding tenant got nothing through: its limit is not per second"

    # The neighbour, on the same limit at a quarter of it, never saw a 429.
    assert len(calming.responses) >= 4
    assert calming.statuses() <= {200, 202}, [
        (r.request.url.path, r.status_code, r.text[:200]) for r in calming.responses
    ]
    assert all(r.headers["ratelimit-limit"] == str(LIMIT_PER_SECOND) for r in calming.responses)

    # Health, readiness and metrics were never limited, even asked with the flooder's key.
    assert len(health.responses) >= 6
    assert 429 not in health.statuses()
    assert not any(h in r.headers for r in health.responses for h in RATE_HEADERS)
    # Readiness asks the dependencies with a short timeout, which a loaded two-core machine can
    # miss; liveness and metrics answer from the process alone.
    for response in health.responses:
        allowed = {200, 503} if response.request.url.path == "/readyz" else {200}
        assert response.status_code in allowed, (response.request.url.path, response.text[:200])

    # Every job a 202 accepted runs to the end: the flood lost none of either tenant's.
    with httpx.Client(base_url=module_stack.gateway_url, timeout=10.0) as client:
        calm_ids = calming.accepted_job_ids()
        final = wait_all_final(client, calm_ids, neighbour, timeout=60)
        assert {job["status"] for job in final.values()} == {"SUCCEEDED"}
        wait_until_free(limited)
        final = wait_all_final(client, accepted_flood, flooder, timeout=60)
        assert {job["status"] for job in final.values()} == {"SUCCEEDED"}
        assert len(final) == len(set(accepted_flood))
