"""Pre-built Celery protocol-2 messages, as kombu's Redis transport stores them.

job-service's relay publishes a whole batch of jobs as one Redis pipeline of LPUSHes of these
(tens of thousands per second) instead of one `send_task` round trip each (~1,300 per second).
The price is that kombu's routing and publish signals are skipped, so a test compares every field
with a message written by a real `send_task` (libs/common/tests/integration/test_messages.py).
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from typing import Any

from conveyor_common import limits
from conveyor_common.envelope import ENVELOPE_KWARG, TaskEnvelope

_ORIGIN = f"conveyor-relay@{socket.gethostname()}"
# kombu's default priority steps for Redis; priority 0 maps to the bare queue name.
_PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEP = "\x06\x16"
# Built once (`json.dumps` with options builds an encoder per call); kombu's body separators.
_BODY_JSON = json.JSONEncoder(separators=(", ", ": "))


def kombu_priority(priority: int) -> int:
    """kombu's priority for a Conveyor `priority`.

    Conveyor's contract: 0..9, higher is more urgent. kombu's Redis transport is the other way
    round: its worker BRPOPs a queue's lists in ascending step order (`queue`, then
    `queue\x06\x163`, `...6`, `...9`), so LOWER kombu priorities are served first. Conveyor 9
    becomes kombu 0 (the bare queue list, read first) and Conveyor 0 becomes kombu 9 (read last).
    """
    clamped = min(max(priority, 0), limits.MAX_PRIORITY)
    return limits.MAX_PRIORITY - clamped


def queue_key(queue: str, priority: int = 0) -> str:
    """The list kombu's Redis transport keeps a queue's messages of KOMBU priority `priority`
    in (what `send_task(..., priority=priority)` writes to): the priority rounded down to one of
    the steps 0, 3, 6, 9; step 0 is the bare queue name. For a Conveyor job's priority, pass
    `kombu_priority(job.priority)` (see there for the direction)."""
    step = max(s for s in _PRIORITY_STEPS if s <= priority) if priority > 0 else 0
    return f"{queue}{_PRIORITY_SEP}{step}" if step else queue


def priority_queue_keys(queue: str) -> tuple[str, ...]:
    """Every list of a queue, in the order kombu's worker serves them."""
    return tuple(queue_key(queue, step) for step in _PRIORITY_STEPS)


def build_task_message(
    envelope: TaskEnvelope,
    *,
    soft_time_limit: float | None,
    time_limit: float | None,
) -> str:
    """The JSON string kombu would LPUSH for `send_task(envelope.task, kwargs={"job": ...},
    task_id=str(envelope.job_id), queue=envelope.queue)`."""
    task_id = str(envelope.job_id)
    kwargs = {ENVELOPE_KWARG: envelope.model_dump(mode="json")}
    body: list[Any] = [
        [],
        kwargs,
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    headers: dict[str, Any] = {
        "lang": "py",
        "task": envelope.task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [time_limit, soft_time_limit],
        "root_id": task_id,
        "parent_id": None,
        # Celery logs these reprs; arguments may carry secrets, so they never go in.
        "argsrepr": "()",
        "kwargsrepr": "{'job': '<envelope>'}",
        "origin": _ORIGIN,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    encoded_body = base64.b64encode(_BODY_JSON.encode(body).encode()).decode()
    message = {
        "body": encoded_body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": envelope.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)
