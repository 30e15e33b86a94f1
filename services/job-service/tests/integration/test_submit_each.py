"""`POST /internal/v1/jobs/each`: the gateway's coalesced single submits. Each job is judged as
if it came alone (the same problem, naming `body.*`), the valid ones are stored with their
outbox rows in one statement and published, and one refused job never takes the others down
with it (unlike a batch)."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_common.settings import TENANT_HEADER
from conveyor_common.statuses import JobStatus
from job_service.models import Job, OutboxEntry

EACH = "/internal/v1/jobs/each"


async def test_each_job_gets_its_own_outcome_in_order(harness: Any, wait_until: Any) -> None:
    h = harness
    jobs = [
        {"task": "echo", "args": {"x": 1}},
        {"task": "no.such.task", "args": {}},
        {"task": "echo", "args": {"x": -1}},
        {"task": "reports.build", "args": {}, "tags": ["t"]},
    ]
    response = await h.client.post(EACH, json={"jobs": jobs})
    assert response.status_code == 200, response.text
    outcomes = response.json()["outcomes"]
    assert [o["status"] for o in outcomes] == [202, 422, 422, 202]

    # What a single submit of the same job would have been told.
    alone = await h.submit(jobs[1])
    assert outcomes[1]["problem"]["type"] == alone.json()["type"]
    assert outcomes[1]["problem"]["errors"] == [
        {"field": "body.task", "reason": "no worker advertises this task"}
    ]
    assert "echo" in outcomes[1]["problem"]["extra"]["known_tasks"]
    assert [e["field"] for e in outcomes[2]["problem"]["errors"]] == ["body.args.x"]
    assert "job" not in outcomes[1] or outcomes[1]["job"] is None

    accepted = [outcomes[0]["job"], outcomes[3]["job"]]
    assert [j["task"] for j in accepted] == ["echo", "reports.build"]
    assert accepted[1]["queue"] == "reports"  # the task's defaults apply, as for one submit
    assert {j["status"] for j in accepted} == {JobStatus.PENDING.value}
    for job in accepted:
        stored = await h.job(job["id"])
        assert stored.tenant_id == "acme"

    async def published() -> bool:
        return await h.outbox_size() == 0

    await wait_until(published)
    assert await h.count(Job) == 2
    assert await h.queue_length("default") == 1
    assert await h.queue_length("reports") == 1


async def test_all_refused_stores_nothing(harness: Any) -> None:
    h = harness
    response = await h.client.post(EACH, json={"jobs": [{"task": "echo", "args": {}}] * 3})
    assert response.status_code == 200, response.text
    assert [o["status"] for o in response.json()["outcomes"]] == [422, 422, 422]
    assert await h.count(Job) == 0
    assert await h.count(OutboxEntry) == 0


async def test_a_call_is_one_statement_for_any_number_of_jobs(quiet_harness: Any) -> None:
    h = quiet_harness
    counts = []
    for n in (2, 200):
        body = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(n)]}
        with h.count_statements() as counter:
            response = await h.client.post(EACH, json=body)
        assert response.status_code == 200, response.text
        assert all(o["status"] == 202 for o in response.json()["outcomes"])
        counts.append(counter.count)
    assert counts[0] == counts[1]
    assert await h.outbox_size() == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "body.jobs"),
        ({"jobs": [{"task": "echo", "args": {"x": 1}}] * 1_001}, "body.jobs"),
        (
            {"jobs": [{"task": "echo", "args": {"x": 1}, "status": "SUCCEEDED"}]},
            "body.jobs.0.status",
        ),
    ],
)
async def test_malformed_calls_are_refused_whole(
    harness: Any, body: dict[str, Any], field: str
) -> None:
    h = harness
    response = await h.client.post(EACH, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await h.count(Job) == 0


async def test_the_tenant_comes_from_the_call(harness: Any) -> None:
    h = harness
    response = await h.client.post(
        EACH, json={"jobs": [{"task": "echo", "args": {"x": 1}}]}, headers={TENANT_HEADER: "beta"}
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["outcomes"][0]["job"]["id"]
    assert (await h.job(job_id)).tenant_id == "beta"
    # acme (the harness's default tenant) cannot see it.
    assert (await h.client.get(f"/internal/v1/jobs/{job_id}")).status_code == 404
