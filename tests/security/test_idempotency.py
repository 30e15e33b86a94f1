"""`Idempotency-Key` under concurrency, through the whole stack: many identical submissions at
once make one job (or one batch), the same key with another body is refused, and a key is
scoped to its tenant."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from conveyor_devstack.stack import Stack

from .support import ApiKey, KeyMaker, is_problem

pytestmark = [pytest.mark.e2e]

CONCURRENT = 20
# 200: the job an earlier request with this key made; 202: this request made it; 409: another
# request with this key is being committed right now (the client retries).
ALLOWED = {200, 202, 409}


@pytest.fixture(scope="module")
def tenant_a(key_maker: KeyMaker) -> ApiKey:
    return key_maker.create(f"idem-a-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def tenant_b(key_maker: KeyMaker) -> ApiKey:
    return key_maker.create(f"idem-b-{uuid.uuid4().hex[:6]}")


async def _fire(
    stack: Stack, key: ApiKey, path: str, body: dict[str, Any], idempotency_key: str, n: int
) -> list[httpx.Response]:
    """`n` identical POSTs, all in flight together (a connection each)."""
    headers = {**key.headers, "Idempotency-Key": idempotency_key}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30.0, limits=limits) as client:
        return list(
            await asyncio.gather(*(client.post(path, json=body, headers=headers) for _ in range(n)))
        )


def _tagged(stack: Stack, key: ApiKey, tag: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack.gateway_url}/v1/jobs",
        params={"tag": tag, "limit": 100},
        headers=key.headers,
        timeout=15.0,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _ids(answer: httpx.Response) -> list[str]:
    body = answer.json()
    return [job["id"] for job in body["jobs"]] if "jobs" in body else [body["id"]]


def _check_one_outcome(answers: list[httpx.Response]) -> list[str]:
    """Every answer is allowed, exactly one created, and all 2xx name the same job(s)."""
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= ALLOWED, [a.text for a in answers if a.status_code not in ALLOWED]
    assert statuses.count(202) == 1, statuses
    for answer in answers:
        if answer.status_code == 409:
            assert is_problem(answer, 409), answer.text
    outcomes = {tuple(_ids(answer)) for answer in answers if answer.status_code < 300}
    assert len(outcomes) == 1, outcomes
    return list(outcomes.pop())


@pytest.mark.parametrize(
    ("path", "jobs_per_request"), [("/v1/jobs", 1), ("/v1/jobs/batch", 3)], ids=["job", "batch"]
)
async def test_concurrent_duplicates_make_one_submission(
    path: str,
    jobs_per_request: int,
    security_stack: Stack,
    tenant_a: ApiKey,
    tenant_b: ApiKey,
) -> None:
    tag = f"idem-{uuid.uuid4().hex[:10]}"
    job = {"task": "echo", "args": {"n": 1}, "tags": [tag]}
    body = job if path == "/v1/jobs" else {"jobs": [job] * jobs_per_request}
    key = f"order-{uuid.uuid4()}"

    answers = await _fire(security_stack, tenant_a, path, body, key, CONCURRENT)
    ids = _check_one_outcome(answers)
    assert len(ids) == jobs_per_request
    assert sorted(job["id"] for job in _tagged(security_stack, tenant_a, tag)) == sorted(ids)

    # Later, one at a time: the same answer again.
    again = await _fire(security_stack, tenant_a, path, body, key, 1)
    assert again[0].status_code == 200, again[0].text
    assert _ids(again[0]) == ids

    # The same key with another body is refused, naming the header.
    changed = {**job, "args": {"n": 2}}
    other_body = changed if path == "/v1/jobs" else {"jobs": [changed] * jobs_per_request}
    refused = (await _fire(security_stack, tenant_a, path, other_body, key, 1))[0]
    assert is_problem(refused, 422), refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["header.Idempotency-Key"]

    # Another tenant's identical request with the same key is its own submission.
    theirs = await _fire(security_stack, tenant_b, path, body, key, CONCURRENT)
    their_ids = _check_one_outcome(theirs)
    assert set(their_ids).isdisjoint(ids)
    assert sorted(job["id"] for job in _tagged(security_stack, tenant_b, tag)) == sorted(their_ids)
    assert len(_tagged(security_stack, tenant_a, tag)) == jobs_per_request
