"""`Idempotency-Key` on batches: the same key and body return the batch already stored, another
body is refused, keys are per tenant, and each job carries a key of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from job_service.jobs.service import batch_job_key
from job_service.models import Job

BATCH = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(3)]}


async def _post(h: Any, body: dict[str, Any], key: str, tenant: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} | ({"X-Conveyor-Tenant": tenant} if tenant else {})
    return await h.client.post("/internal/v1/jobs/batch", json=body, headers=headers)


def _ids(response: Any) -> list[str]:
    return [job["id"] for job in response.json()["jobs"]]


async def test_the_same_key_and_body_return_the_stored_batch(quiet_harness: Any) -> None:
    h = quiet_harness
    first = await _post(h, BATCH, "order-7")
    again = await _post(h, BATCH, "order-7")

    assert (first.status_code, again.status_code) == (202, 200)
    assert _ids(again) == _ids(first)
    assert [job["idempotency_key"] for job in again.json()["jobs"]] == [
        "order-7 #0",
        "order-7 #1",
        "order-7 #2",
    ]
    assert await h.count(Job) == 3
    assert await h.outbox_size() == 3


async def test_another_body_with_the_key_is_refused(quiet_harness: Any) -> None:
    h = quiet_harness
    assert (await _post(h, BATCH, "order-8")).status_code == 202

    for body in (
        {"jobs": [*BATCH["jobs"][:2], {"task": "echo", "args": {"x": 99}}]},  # one job differs
        {"jobs": BATCH["jobs"][:2]},  # fewer jobs
        {"jobs": [*BATCH["jobs"], {"task": "echo", "args": {"x": 3}}]},  # more jobs
    ):
        refused = await _post(h, body, "order-8")
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "urn:conveyor:problem:idempotency-key-reused"
        assert [e["field"] for e in refused.json()["errors"]] == ["header.Idempotency-Key"]
    assert await h.count(Job) == 3


async def test_keys_are_per_tenant_and_apart_from_single_job_keys(quiet_harness: Any) -> None:
    h = quiet_harness
    ours = await _post(h, BATCH, "order-9")
    theirs = await _post(h, BATCH, "order-9", tenant="globex")
    single = await h.submit(
        {"task": "echo", "args": {"x": 0}}, headers={"Idempotency-Key": "order-9"}
    )

    assert (ours.status_code, theirs.status_code, single.status_code) == (202, 202, 202)
    assert set(_ids(ours)).isdisjoint(_ids(theirs))
    assert await h.count(Job) == 7


async def test_concurrent_duplicates_store_one_batch(quiet_harness: Any) -> None:
    h = quiet_harness
    answers = await asyncio.gather(*(_post(h, BATCH, "order-10") for _ in range(8)))

    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 202, 409}, [a.text for a in answers]
    assert statuses.count(202) == 1
    assert len({tuple(_ids(a)) for a in answers if a.status_code < 300}) == 1
    assert await h.count(Job) == 3


def test_a_key_too_long_for_its_suffix_is_digested() -> None:
    short, long = batch_job_key("k", 12), batch_job_key("k" * 200, 12)
    assert short == "k #12"
    assert long.startswith("sha256:")
    assert long.endswith(" #12")
    assert len(long) <= 200
    assert batch_job_key("k" * 200, 12) != batch_job_key("k" * 199 + "j", 12)
