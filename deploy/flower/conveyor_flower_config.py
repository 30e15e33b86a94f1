"""Celery configuration for Flower (loaded with `celery --config=conveyor_flower_config flower`).

Flower runs from its own image (mher/flower), which has no Conveyor packages, so the few settings
it must share with the workers are repeated here; deploy/tests/test_flower_config.py compares
them with `conveyor_common.celery_app` so the two cannot drift:
- the key prefix, or Flower would look at an empty broker (Conveyor namespaces every key);
- the visibility timeout, because on a shared broker the shortest one wins silently (pitfall #21);
- JSON only, never pickle (pitfall #23)."""

from __future__ import annotations

import os

_namespace = os.environ.get("CONVEYOR_REDIS_NAMESPACE", "conveyor")

broker_url = os.environ["CONVEYOR_REDIS_URL"]
# limits.MAX_TIMEOUT_SECONDS (3,600) + celery_app.VISIBILITY_MARGIN_SECONDS (600).
_VISIBILITY_TIMEOUT_SECONDS = 4_200
broker_transport_options = {
    "global_keyprefix": f"{_namespace}:",
    "visibility_timeout": _VISIBILITY_TIMEOUT_SECONDS,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
}
accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
broker_connection_retry_on_startup = True
