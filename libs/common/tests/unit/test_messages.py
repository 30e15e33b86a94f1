"""Pre-built protocol-2 messages (the real `send_task` comparison is in integration/)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.messages import (
    build_task_message,
    kombu_priority,
    priority_queue_keys,
    queue_key,
)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (0, "jobs"),
        (1, "jobs"),
        (2, "jobs"),
        (3, "jobs\x06\x163"),
        (5, "jobs\x06\x163"),
        (6, "jobs\x06\x166"),
        (8, "jobs\x06\x166"),
        (9, "jobs\x06\x169"),
    ],
)
def test_queue_key_follows_kombu_priority_steps(priority, expected):
    assert queue_key("jobs", priority) == expected


def test_default_priority_is_the_bare_queue():
    assert queue_key("default") == "default"


def test_conveyor_priorities_map_to_kombu_lists_most_urgent_first():
    served_first = priority_queue_keys("jobs")  # kombu's worker reads them in this order
    assert served_first[0] == "jobs"
    ranks = [served_first.index(queue_key("jobs", kombu_priority(p))) for p in range(10)]
    assert ranks[9] == 0  # Conveyor's most urgent: the list read first
    assert ranks[0] == len(served_first) - 1  # the default, 0: the list read last
    assert ranks == sorted(ranks, reverse=True)  # never less urgent for a higher priority
    assert kombu_priority(-3) == 9
    assert kombu_priority(12) == 0


def test_message_carries_the_envelope_as_the_one_kwarg():
    envelope = TaskEnvelope(
        job_id=uuid.uuid4(),
        tenant_id="acme",
        task="images.resize",
        attempt=2,
        args={"url": "u", "secret": "s"},
        queue="images",
        timeout_seconds=120,
    )
    message = json.loads(build_task_message(envelope, soft_time_limit=110, time_limit=120))
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    assert args == []
    assert TaskEnvelope.model_validate(kwargs["job"]) == envelope
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    headers = message["headers"]
    assert headers["task"] == "images.resize"
    assert headers["id"] == headers["root_id"] == str(envelope.job_id)
    assert headers["timelimit"] == [120, 110]  # [hard, soft], as Celery orders them
    assert "secret" not in json.dumps(headers)  # arguments never reach Celery's log lines
    assert message["properties"]["delivery_info"]["routing_key"] == "images"
    assert message["properties"]["correlation_id"] == str(envelope.job_id)
