"""Batches: 1,000 jobs in one transaction, published in one round, at a cost in SQL statements
that does not grow with the batch size."""

from __future__ import annotations

from typing import Any

from conveyor_common.statuses import JobStatus
from job_service.models import Job, OutboxEntry


async def _submit_batch(h: Any, n: int) -> tuple[list[dict[str, Any]], int]:
    body = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(n)]}
    with h.count_statements() as counter:
        response = await h.client.post("/internal/v1/jobs/batch", json=body)
    assert response.status_code == 202, response.text[:500]
    return response.json()["jobs"], counter.count


async def _relay(h: Any) -> tuple[int, int]:
    with h.count_statements() as counter:
        published = await h.app.state.relay.publish_once()
    return published, counter.count


async def test_statements_do_not_grow_with_batch_size(quiet_harness: Any) -> None:
    h = quiet_harness

    small, submit_small = await _submit_batch(h, 10)
    published_small, relay_small = await _relay(h)
    large, submit_large = await _submit_batch(h, 1_000)
    published_large, relay_large = await _relay(h)

    assert (len(small), len(large)) == (10, 1_000)
    assert (published_small, published_large) == (10, 1_000)
    # Structural: the same number of statements for 10 jobs as for 1,000.
    assert submit_large == submit_small
    assert relay_large == relay_small
    assert submit_small <= 4, submit_small  # (BEGIN IMMEDIATE on SQLite,) jobs, outbox
    assert relay_small <= 4, relay_small  # (BEGIN,) claim, mark queued, delete


async def test_a_batch_of_1000_is_accepted_and_published(harness: Any, wait_until: Any) -> None:
    h = harness
    jobs, _ = await _submit_batch(h, 1_000)

    assert {j["status"] for j in jobs} == {"PENDING"}
    assert len({j["id"] for j in jobs}) == 1_000

    async def all_published() -> bool:
        # The publish precedes the commit that deletes the outbox rows: wait for both.
        return await h.outbox_size() == 0 and await h.queue_length("default") > 0

    await wait_until(all_published)
    assert await h.queue_length("default") == 1_000
    assert await h.count(Job, Job.status == JobStatus.QUEUED, Job.attempts == 1) == 1_000
    messages = await h.queue_messages("default")
    # Published in submission order (the oldest is consumed first).
    assert [m["headers"]["id"] for m in messages] == [j["id"] for j in jobs]
    assert await h.count(OutboxEntry) == 0


async def test_an_oversized_batch_is_refused(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.client.post(
        "/internal/v1/jobs/batch", json={"jobs": [{"task": "noop"}] * 1_001}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.jobs"]
    empty = await h.client.post("/internal/v1/jobs/batch", json={"jobs": []})
    assert empty.status_code == 422
    assert await h.count(Job) == 0
