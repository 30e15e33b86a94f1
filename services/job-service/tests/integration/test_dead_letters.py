"""Dead letters: listed with filters and cursor pages, with the last error, a capped traceback
and every attempt's history; replayed as a new cycle; purged (the job row stays), on both
databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor_common import limits
from conveyor_common.events import EventType
from conveyor_common.settings import TENANT_HEADER
from conveyor_common.statuses import JobStatus
from job_service.models import Job

URL = "/internal/v1/dead-letters"


async def _dead_letter(
    h: Any, task: str = "flaky", *, attempts: int = 1, error_type: str = "IOError", **extra: Any
) -> str:
    """A job that failed `attempts` times, the last with `error_type`."""
    body = {"task": task, "max_attempts": attempts, "retry_backoff_seconds": 0}
    if task == "echo":
        body["args"] = {"x": 1}
    job_id: str = (await h.submit(body)).json()["id"]
    for attempt in range(1, attempts + 1):
        assert await h.app.state.relay.publish_once() == 1
        await h.report(
            h.event(job_id, EventType.RECEIVED, attempt),
            h.event(job_id, EventType.STARTED, attempt),
            h.event(
                job_id,
                EventType.FAILED,
                attempt,
                error_type=error_type,
                error_message=f"attempt {attempt} failed",
                **extra,
            ),
        )
        if attempt < attempts:
            assert await h.app.state.promoter.promote_once() == 1
    assert (await h.job(job_id)).status == JobStatus.FAILED
    return job_id


async def test_a_dead_letter_shows_its_error_traceback_and_every_attempt(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    job_id = await _dead_letter(h, attempts=2, traceback="Traceback ...\nIOError: boom")

    response = await h.client.get(f"{URL}/{job_id}")

    assert response.status_code == 200, response.text
    letter = response.json()
    assert letter["id"] == job_id
    assert (letter["status"], letter["dead_letter"], letter["attempts"]) == ("FAILED", True, 2)
    assert letter["error"] == {"type": "IOError", "message": "attempt 2 failed"}
    assert letter["traceback"].endswith("IOError: boom")
    assert letter["failed_at"] is not None
    assert [(e["attempt"], e["type"]) for e in letter["history"]] == [
        (1, "received"),
        (1, "started"),
        (1, "failed"),
        (2, "received"),
        (2, "started"),
        (2, "failed"),
    ]


async def test_a_stored_traceback_over_the_cap_is_cut_from_the_front(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _dead_letter(h)
    long = "x" * (limits.MAX_TRACEBACK_LENGTH * 2) + "TheError"
    async with h.session() as session:
        job = await session.get(Job, uuid.UUID(job_id))
        job.traceback = long
        await session.commit()

    letter = (await h.client.get(f"{URL}/{job_id}")).json()
    assert len(letter["traceback"]) == limits.MAX_TRACEBACK_LENGTH
    assert letter["traceback"].endswith("TheError")


async def test_list_filters_and_cursor_pages(quiet_harness: Any) -> None:
    h = quiet_harness
    io_errors = [await _dead_letter(h) for _ in range(3)]
    value_error = await _dead_letter(h, "echo", error_type="ValueError")
    not_dead = (await h.submit({"task": "noop"})).json()["id"]

    everything = (await h.client.get(URL)).json()
    assert [i["id"] for i in everything["items"]] == [value_error, *reversed(io_errors)]
    assert not_dead not in {i["id"] for i in everything["items"]}

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "error_type": "IOError"}
        if cursor:
            params["cursor"] = cursor
        page = (await h.client.get(URL, params=params)).json()
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(io_errors))

    by_task = (await h.client.get(URL, params={"task": "echo"})).json()["items"]
    assert [i["id"] for i in by_task] == [value_error]
    by_queue = (await h.client.get(URL, params={"queue": "reports"})).json()["items"]
    assert by_queue == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (await h.client.get(URL, params={"failed_after": future})).json()["items"] == []
    recent = (await h.client.get(URL, params={"failed_after": past})).json()["items"]
    assert len(recent) == 4
    assert (await h.client.get(URL, params={"failed_before": past})).json()["items"] == []

    backwards = await h.client.get(URL, params={"failed_after": future, "failed_before": past})
    assert backwards.status_code == 422
    other = await h.client.get(URL, headers={TENANT_HEADER: "globex"})
    assert other.json()["items"] == []


async def test_replay_one_starts_a_new_cycle_linked_in_the_history(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _dead_letter(h, attempts=2)

    response = await h.client.post(f"{URL}/{job_id}/replay")

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["status"], job["cycle"], job["attempts"], job["dead_letter"]) == (
        "PENDING",
        2,
        2,
        False,
    )
    assert (await h.client.get(f"{URL}/{job_id}")).status_code == 404
    assert await h.app.state.relay.publish_once() == 1
    *_earlier, message = await h.queue_messages()
    assert message["decoded_body"][1]["job"]["attempt"] == 3
    # The new cycle has the job's max_attempts (2) again: attempt 3 fails, 4 runs.
    await h.report(h.event(job_id, EventType.STARTED, 3), h.event(job_id, EventType.FAILED, 3))
    assert (await h.job(job_id)).status == JobStatus.RETRYING
    history = (await h.client.get(f"/internal/v1/jobs/{job_id}/events")).json()["items"]
    assert [(e["attempt"], e["cycle"], e["type"]) for e in history][-3:] == [
        (2, 2, "replayed"),
        (3, 2, "started"),
        (3, 2, "failed"),
    ]

    again = await h.client.post(f"{URL}/{job_id}/replay")
    assert again.status_code == 404
    assert again.json()["type"] == "urn:conveyor:problem:dead-letter-not-found"


async def test_replay_many(quiet_harness: Any) -> None:
    h = quiet_harness
    first, second = await _dead_letter(h), await _dead_letter(h)
    alive = (await h.submit({"task": "noop"})).json()["id"]
    unknown = str(uuid.uuid4())

    response = await h.client.post(
        f"{URL}/replay", json={"ids": [first, alive, second, unknown, first]}
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"replayed": [first, second], "not_found": [alive, unknown]}
    assert {(await h.job(i)).status for i in (first, second)} == {JobStatus.PENDING}
    assert await h.app.state.relay.publish_once() == 3  # the two replays and `alive`

    too_many = await h.client.post(f"{URL}/replay", json={"ids": [unknown] * 1_001})
    assert too_many.status_code == 422
    other = await h.client.post(
        f"{URL}/replay", json={"ids": [first]}, headers={TENANT_HEADER: "globex"}
    )
    assert other.json() == {"replayed": [], "not_found": [first]}


async def test_purge_one_and_many_keeps_the_jobs_as_history(quiet_harness: Any) -> None:
    h = quiet_harness
    one, two, three = [await _dead_letter(h) for _ in range(3)]
    other_error = await _dead_letter(h, error_type="ValueError")

    deleted = await h.client.delete(f"{URL}/{one}")
    assert deleted.status_code == 204
    assert (await h.client.delete(f"{URL}/{one}")).status_code == 404
    by_ids = await h.client.post(f"{URL}/purge", json={"ids": [two, str(uuid.uuid4())]})
    assert by_ids.json() == {"purged": 1}
    by_filter = await h.client.post(f"{URL}/purge", json={"filter": {"error_type": "IOError"}})
    assert by_filter.json() == {"purged": 1}

    remaining = (await h.client.get(URL)).json()["items"]
    assert [i["id"] for i in remaining] == [other_error]
    for job_id in (one, two, three):
        job = (await h.client.get(f"/internal/v1/jobs/{job_id}")).json()
        assert (job["status"], job["dead_letter"]) == ("FAILED", False)

    both = await h.client.post(f"{URL}/purge", json={"ids": [one], "filter": {}})
    assert both.status_code == 422
    neither = await h.client.post(f"{URL}/purge", json={})
    assert neither.status_code == 422
    everything = await h.client.post(f"{URL}/purge", json={"filter": {}})
    assert everything.json() == {"purged": 1}


async def test_the_dead_letter_gauge_counts_them(quiet_harness: Any) -> None:
    h = quiet_harness
    first, _ = await _dead_letter(h), await _dead_letter(h)
    await h.app.state.gauges.collect_once()
    assert "conveyor_dead_letters 2.0" in (await h.client.get("/metrics")).text

    await h.client.delete(f"{URL}/{first}")
    await h.app.state.gauges.collect_once()
    assert "conveyor_dead_letters 1.0" in (await h.client.get("/metrics")).text
