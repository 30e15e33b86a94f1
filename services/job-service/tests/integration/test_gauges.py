"""The operator gauges on /metrics, refreshed from PostgreSQL and Redis (both databases)."""

from __future__ import annotations

import re
from typing import Any

from conveyor_common.events import EventType


async def _gauges(h: Any) -> dict[str, float]:
    await h.app.state.gauges.collect_once()
    text = (await h.client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        match = re.match(
            r"^(conveyor_(?:jobs_backlog|outbox|events_|dead_letters|workers)\S*) (\S+)$", line
        )
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def backlog(queue: str, status: str) -> str:
    return f'conveyor_jobs_backlog{{queue="{queue}",status="{status}"}}'


async def test_gauges_follow_the_stores(quiet_harness: Any) -> None:
    h = quiet_harness
    await h.client.post(
        "/internal/v1/jobs/batch",
        json={"jobs": [{"task": "noop"}, {"task": "noop"}, {"task": "reports.build"}]},
    )

    pending = await _gauges(h)
    assert pending[backlog("default", "PENDING")] == 2
    assert pending[backlog("reports", "PENDING")] == 1
    assert pending[backlog("default", "QUEUED")] == 0  # exported at 0, not missing
    assert pending["conveyor_outbox_pending"] == 3
    assert pending["conveyor_outbox_lag_seconds"] >= 0
    assert pending["conveyor_workers"] == 0

    assert await h.app.state.relay.publish_once() == 3
    job_id = (await h.queue_messages())[0]["headers"]["id"]
    await h.add_events(h.event(job_id, EventType.RECEIVED), h.event(job_id, EventType.STARTED))
    await h.redis.set(h.keys.worker("w-1"), "{}", ex=30)
    await h.redis.set(h.keys.worker("w-2"), "{}", ex=30)

    queued = await _gauges(h)
    assert queued[backlog("default", "PENDING")] == 0  # a label that emptied reads 0
    assert queued[backlog("default", "QUEUED")] == 2
    assert queued[backlog("reports", "QUEUED")] == 1
    assert queued["conveyor_outbox_pending"] == 0
    assert queued["conveyor_outbox_lag_seconds"] == 0
    assert queued["conveyor_events_stream_length"] == 2
    assert queued["conveyor_events_pending"] == 0  # no group yet: nothing read
    assert queued["conveyor_workers"] == 2

    # Read but not acknowledged (a reader that died mid-batch).
    await h.app.state.reader.ensure_group()
    await h.redis.xreadgroup(h.keys.events_group, "dead-reader", {h.keys.events_stream: ">"})
    assert (await _gauges(h))["conveyor_events_pending"] == 2
