"""The yardstick: a bare Celery app with the same reliability settings Conveyor's workers use
(built by the same factory: late ack, reject on worker lost, prefetch 1, JSON, results stored in
Redis) and a no-op task.

Imported by the bare worker process (`celery -A conveyor_bench.bare_tasks:app`), which is why
the app is built at import from the environment the bench gives that process."""

from __future__ import annotations

import os
import time
from typing import Any

from conveyor_common.celery_app import create_celery_app

NOOP = "bench.noop"
STAMP = "bench.stamp"
QUEUE = "bare"

app = create_celery_app(
    "bare-celery",
    broker_url=os.environ.get("BENCH_BARE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    namespace=os.environ.get("BENCH_BARE_NAMESPACE", "bare"),
)


@app.task(name=NOOP)  # type: ignore[untyped-decorator]
def noop(**_kwargs: Any) -> None:
    return None


@app.task(name=STAMP)  # type: ignore[untyped-decorator]
def stamp(**_kwargs: Any) -> float:
    """When the task started (wall clock), for the submit→started latency."""
    return time.time()
