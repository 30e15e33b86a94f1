"""Time limits: the message carries soft = timeout and hard = timeout + grace; a timeout over
the bound derived from the visibility timeout is refused with 422 (both databases)."""

from __future__ import annotations

from typing import Any

from conveyor_common.catalog import TaskDefaults, TaskDescriptor
from job_service.models import Job


async def test_the_message_carries_soft_and_hard_limits(harness_factory: Any) -> None:
    async with harness_factory(
        background_tasks=False, max_timeout_seconds=600, time_limit_grace_seconds=30
    ) as h:
        await h.seed_catalog()
        response = await h.submit({"task": "echo", "args": {"x": 1}, "timeout_seconds": 600})
        assert response.status_code == 202, response.text
        assert await h.app.state.relay.publish_once() == 1
        [message] = await h.queue_messages()
        assert message["headers"]["timelimit"] == [630, 600]  # [hard, soft]
        assert message["decoded_body"][1]["job"]["timeout_seconds"] == 600


async def test_a_timeout_over_the_bound_is_refused(harness_factory: Any) -> None:
    async with harness_factory(background_tasks=False, max_timeout_seconds=600) as h:
        await h.seed_catalog()
        response = await h.submit({"task": "echo", "args": {"x": 1}, "timeout_seconds": 601})
        assert response.status_code == 422
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in problem["errors"]] == ["body.timeout_seconds"]
        assert "600" in problem["errors"][0]["reason"]

        batch = await h.client.post(
            "/internal/v1/jobs/batch",
            json={
                "jobs": [
                    {"task": "noop", "timeout_seconds": 10},
                    {"task": "noop", "timeout_seconds": 3_000},
                ]
            },
        )
        assert batch.status_code == 422
        assert [e["field"] for e in batch.json()["errors"]] == ["body.jobs.1.timeout_seconds"]
        assert await h.count(Job) == 0


async def test_a_task_default_over_the_bound_needs_an_explicit_shorter_timeout(
    harness_factory: Any,
) -> None:
    slow = TaskDescriptor(
        name="slow", input_schema={"type": "object"}, defaults=TaskDefaults(timeout_seconds=900)
    )
    async with harness_factory(background_tasks=False, max_timeout_seconds=600) as h:
        await h.seed_catalog()
        await h.seed_catalog([slow])
        refused = await h.submit({"task": "slow"})
        assert refused.status_code == 422
        assert "900" in refused.json()["errors"][0]["reason"]
        accepted = await h.submit({"task": "slow", "timeout_seconds": 300})
        assert accepted.status_code == 202
