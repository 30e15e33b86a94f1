"""Submitting jobs: the job row and its outbox row commit together, the relay publishes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from conveyor_common.statuses import JobStatus
from job_service.models import Job, OutboxEntry


async def test_submit_stores_job_and_outbox_then_relay_publishes(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.submit({"task": "echo", "args": {"x": 1}, "tags": ["t1"]})

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "PENDING"
    assert job["attempts"] == 0
    assert (job["queue"], job["max_attempts"], job["timeout_seconds"]) == ("default", 3, 300)
    assert await h.count(Job) == 1
    assert await h.count(OutboxEntry, OutboxEntry.job_id == uuid.UUID(job["id"])) == 1

    assert await h.app.state.relay.publish_once() == 1

    assert await h.outbox_size() == 0
    row = await h.job(job["id"])
    assert row.status == JobStatus.QUEUED
    assert row.attempts == 1
    assert row.queued_at is not None
    assert row.queued_at.tzinfo is not None
    [message] = await h.queue_messages("default")
    assert message["headers"]["task"] == "echo"
    assert message["headers"]["id"] == job["id"]
    assert message["headers"]["timelimit"] == [300 + h.settings.time_limit_grace_seconds, 300]
    envelope = message["decoded_body"][1]["job"]
    assert envelope["job_id"] == job["id"]
    assert envelope["tenant_id"] == "acme"
    assert envelope["attempt"] == 1
    assert envelope["args"] == {"x": 1}


async def test_a_failure_after_the_inserts_leaves_neither_row(quiet_harness: Any) -> None:
    h = quiet_harness
    engine = h.app.state.engine.sync_engine

    def fail_on_outbox_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The job row is already inserted in this transaction when the outbox insert runs (on
        # SQLite; on PostgreSQL both inserts are one statement, which fails as a whole).
        if "INSERT INTO OUTBOX" in statement.upper():
            raise RuntimeError("injected failure between the two inserts")

    event.listen(engine, "before_cursor_execute", fail_on_outbox_insert)
    try:
        response = await h.submit({"task": "echo", "args": {"x": 1}})
        batch = await h.client.post(
            "/internal/v1/jobs/batch", json={"jobs": [{"task": "noop"}, {"task": "noop"}]}
        )
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_outbox_insert)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "injected" not in response.text
    assert batch.status_code == 500
    assert await h.count(Job) == 0
    assert await h.outbox_size() == 0

    # The same request without the fault commits both rows.
    assert (await h.submit({"task": "echo", "args": {"x": 1}})).status_code == 202
    assert await h.count(Job) == 1
    assert await h.outbox_size() == 1


async def test_the_running_relay_publishes_right_after_commit(
    harness: Any, wait_until: Any
) -> None:
    h = harness
    job = (await h.submit({"task": "reports.build", "priority": 9})).json()

    assert job["queue"] == "reports"
    assert (job["timeout_seconds"], job["max_attempts"]) == (42, 5)

    async def published() -> list[dict[str, Any]]:
        # The publish precedes the commit that deletes the outbox row: wait for both.
        if await h.outbox_size():
            return []
        return await h.queue_messages("reports", priority=9)

    [message] = await wait_until(published)
    assert message["headers"]["id"] == job["id"]
    assert (await h.job(job["id"])).status == JobStatus.QUEUED


async def test_idempotency_key_returns_the_same_job(quiet_harness: Any) -> None:
    h = quiet_harness
    body = {"task": "echo", "args": {"x": 7}}
    headers = {"Idempotency-Key": "order-42"}

    first = await h.submit(body, headers=headers)
    again = await h.submit(body, headers=headers)
    other_body = await h.submit({"task": "echo", "args": {"x": 8}}, headers=headers)
    other_tenant = await h.submit(body, headers={**headers, "X-Conveyor-Tenant": "globex"})

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotency_key"] == "order-42"
    assert other_body.status_code == 422
    assert other_body.json()["type"] == "urn:conveyor:problem:idempotency-key-reused"
    assert other_tenant.status_code == 202
    assert other_tenant.json()["id"] != first.json()["id"]
    assert await h.count(Job) == 2
    assert await h.outbox_size() == 2


async def test_a_job_for_later_is_scheduled_without_an_outbox_row(quiet_harness: Any) -> None:
    h = quiet_harness
    run_at = datetime.now(UTC) + timedelta(hours=1)
    response = await h.submit({"task": "noop", "run_at": run_at.isoformat()})

    assert response.status_code == 202
    assert response.json()["status"] == "SCHEDULED"
    assert datetime.fromisoformat(response.json()["run_at"]) == run_at
    assert await h.outbox_size() == 0
    assert await h.app.state.relay.publish_once() == 0
    assert await h.app.state.promoter.promote_once() == 0


async def test_read_back_a_job(quiet_harness: Any) -> None:
    h = quiet_harness
    created = (await h.submit({"task": "echo", "args": {"x": 3}, "metadata": {"k": "v"}})).json()

    response = await h.client.get(f"/internal/v1/jobs/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created
