"""Cancel (stored in PostgreSQL, signalled to workers through Redis, final against any late
event) and retry (a new cycle of attempts, linked in the history), on both databases."""

from __future__ import annotations

import uuid
from typing import Any

from conveyor_common.events import EventType
from conveyor_common.settings import TENANT_HEADER
from conveyor_common.statuses import JobStatus
from job_service.models import OutboxEntry


async def _published(h: Any, body: dict[str, Any] | None = None) -> str:
    job_id: str = (await h.submit(body or {"task": "echo", "args": {"x": 1}})).json()["id"]
    while await h.app.state.relay.publish_once():
        pass
    assert (await h.job(job_id)).status == JobStatus.QUEUED
    return job_id


async def _cancel(h: Any, job_id: str, **kwargs: Any) -> Any:
    return await h.client.post(f"/internal/v1/jobs/{job_id}/cancel", **kwargs)


async def test_cancel_a_queued_job(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h)

    response = await _cancel(h, job_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["finished_at"] is not None) == ("CANCELLED", True)
    # Workers are told before the answer: they skip the message if they meet it.
    assert await h.redis.get(h.keys.cancel(job_id)) == b"1"
    ttl = await h.redis.ttl(h.keys.cancel(job_id))
    assert ttl > h.app.state.time_limits.visibility_timeout_seconds
    history = await h.events_of(job_id)
    assert [(e.attempt, e.cycle, e.type) for e in history] == [(1, 1, "cancelled")]
    # The relay writes the key again from the outbox (it would, had Redis been down).
    await h.redis.delete(h.keys.cancel(job_id))
    assert await h.count(OutboxEntry, OutboxEntry.job_id == uuid.UUID(job_id)) == 1
    assert await h.app.state.relay.publish_once() == 1
    assert await h.redis.exists(h.keys.cancel(job_id))
    assert await h.queue_length() == 1  # the old message, which the worker will skip


async def test_a_pending_job_is_cancelled_before_it_is_ever_published(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = (await h.submit({"task": "noop"})).json()["id"]
    assert (await _cancel(h, job_id)).json()["status"] == "CANCELLED"

    assert await h.app.state.relay.publish_once() == 1
    assert await h.queue_length() == 0
    assert (await h.job(job_id)).attempts == 0


async def test_a_late_success_does_not_overwrite_cancelled(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h)
    await h.report(h.event(job_id, EventType.STARTED))
    assert (await _cancel(h, job_id)).json()["status"] == "CANCELLED"

    await h.report(h.event(job_id, EventType.SUCCEEDED), h.event(job_id, EventType.FAILED))

    job = await h.job(job_id)
    assert job.status == JobStatus.CANCELLED
    types = [e.type for e in await h.events_of(job_id)]
    assert types == ["started", "cancelled", "succeeded", "failed"]  # recorded, not applied


async def test_cancel_is_harmless_to_repeat_and_refused_for_a_finished_job(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    cancelled = await _published(h)
    first = await _cancel(h, cancelled)
    again = await _cancel(h, cancelled)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(await h.events_of(cancelled)) == 1

    done = await _published(h)
    await h.report(h.event(done, EventType.STARTED), h.event(done, EventType.SUCCEEDED))
    refused = await _cancel(h, done)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:conveyor:problem:job-already-finished"
    assert (await h.job(done)).status == JobStatus.SUCCEEDED


async def test_cancel_and_retry_are_tenant_scoped(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h)
    other = {TENANT_HEADER: "globex"}
    for action in ("cancel", "retry"):
        response = await h.client.post(f"/internal/v1/jobs/{job_id}/{action}", headers=other)
        assert response.status_code == 404, action
        assert response.json()["type"] == "urn:conveyor:problem:job-not-found"
    missing = await _cancel(h, str(uuid.uuid4()))
    assert missing.status_code == 404
    assert (await h.job(job_id)).status == JobStatus.QUEUED


async def test_retry_a_cancelled_job_starts_a_new_cycle(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h)
    await _cancel(h, job_id)
    assert await h.app.state.relay.publish_once() == 1  # the cancel key
    await h.clear_queue()

    response = await h.client.post(f"/internal/v1/jobs/{job_id}/retry")

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["status"], body["cycle"], body["attempts"]) == ("PENDING", 2, 1)
    assert body["finished_at"] is None
    assert await h.app.state.relay.publish_once() == 1
    [message] = await h.queue_messages()
    assert message["decoded_body"][1]["job"]["attempt"] == 2  # attempt numbers keep counting
    # Published with the cancel key gone, or the worker would skip the new attempt.
    assert not await h.redis.exists(h.keys.cancel(job_id))
    history = [(e.attempt, e.cycle, e.type) for e in await h.events_of(job_id)]
    assert history == [(1, 1, "cancelled"), (1, 2, "retried")]


async def test_retry_a_failed_job_gives_it_max_attempts_more(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky", "max_attempts": 1})
    await h.report(h.event(job_id, EventType.STARTED), h.event(job_id, EventType.FAILED))
    assert (await h.job(job_id)).status == JobStatus.FAILED

    retried = (await h.client.post(f"/internal/v1/jobs/{job_id}/retry")).json()
    assert (retried["status"], retried["error"], retried["dead_letter"]) == ("PENDING", None, False)
    assert await h.app.state.relay.publish_once() == 1
    await h.report(h.event(job_id, EventType.STARTED, 2), h.event(job_id, EventType.FAILED, 2))

    job = await h.job(job_id)
    assert (job.status, job.attempts, job.cycle, job.prior_attempts) == (
        JobStatus.FAILED,
        2,
        2,
        1,
    )


async def test_retry_is_refused_unless_failed_or_cancelled(quiet_harness: Any) -> None:
    h = quiet_harness
    queued = await _published(h)
    response = await h.client.post(f"/internal/v1/jobs/{queued}/retry")
    assert response.status_code == 409
    assert response.json()["type"] == "urn:conveyor:problem:job-not-retryable"
    assert response.json()["extra"] == {"status": "QUEUED"}


async def test_the_history_endpoint_is_tenant_scoped(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h)
    await h.report(
        h.event(job_id, EventType.RECEIVED),
        h.event(job_id, EventType.STARTED),
        h.event(job_id, EventType.FAILED, error_type="IOError", error_message="reset"),
    )
    response = await h.client.get(f"/internal/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["attempt"], i["cycle"], i["type"]) for i in items] == [
        (1, 1, "received"),
        (1, 1, "started"),
        (1, 1, "failed"),
    ]
    assert (items[2]["error_type"], items[2]["error_message"]) == ("IOError", "reset")
    other = await h.client.get(
        f"/internal/v1/jobs/{job_id}/events", headers={TENANT_HEADER: "globex"}
    )
    assert other.status_code == 404
