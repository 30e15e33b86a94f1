"""An attempt's outcome, written in ONE round trip: the result record, the final lifecycle
events and the release of the attempt's lease, by one Lua script.

The record is exactly what Celery's Redis result backend stores (`{"status", "result",
"traceback", "children", "date_done", "task_id"}` under `celery-task-meta-<job id>`, with the
result TTL), so the result-service and job-service's reconciler read it unchanged. Conveyor's
tasks are registered with `ignore_result=True`: Celery's backend would spend a GET and a
MULTI/SETEX/PUBLISH/EXEC round trip on every task (nothing subscribes to the PUBLISH, pitfall
#17), and the final event would need a round trip of its own after it.

The script keeps Celery's rule that a stored SUCCESS is never overwritten (a late copy of an
attempt must not replace the outcome a client may already have read); the result goes before
the final event, so whoever sees the event also finds the result; the lease is deleted only if
it is still this attempt's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
import structlog

from conveyor_common.events import LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.leases import HeldAttempt

log = structlog.get_logger("conveyor.worker")

# Celery's states (celery.states).
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

# KEYS: result, lease, events stream.
# ARGV: record, result TTL ms, lease value ('' when no lease is held), stream maxlen, events...
# Returns 1 when the record was stored, 0 when a stored SUCCESS was kept.
_FINISH = """
local current = redis.call('GET', KEYS[1])
local keep = false
if current then
  local ok, meta = pcall(cjson.decode, current)
  keep = ok and type(meta) == 'table' and meta['status'] == 'SUCCESS'
end
if not keep then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
for i = 5, #ARGV do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[i])
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
if keep then return 0 end
return 1
"""

# Beyond the client's own quick retries (runtime.py): a result is worth waiting a few seconds
# for, as Celery's backend did (`result_backend_always_retry`), rather than a rerun of the job.
RETRY_PAUSES_SECONDS = (0.1, 0.3, 1.0, 2.0)


# One encoder for every record: `json.dumps` with options builds a new one on each call.
_ENCODER = json.JSONEncoder(allow_nan=False)


def _record(task_id: str, status: str, result: Any, traceback: str | None) -> str:
    return _ENCODER.encode(
        {
            "status": status,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": datetime.now(UTC).isoformat(),
            "task_id": task_id,
        }
    )


def success_record(task_id: str, value: Any) -> str:
    """The record of a successful task; `value` is JSON-ready (the runner's `StoredResult`)."""
    return _record(task_id, SUCCESS, value, None)


def failure_record(task_id: str, exception: Mapping[str, Any], traceback: str | None) -> str:
    """The record of a failed task; `exception` is Celery's JSON form of the exception
    (`backend.prepare_exception`: `{"exc_type", "exc_message", "exc_module"}`)."""
    return _record(task_id, FAILURE, dict(exception), traceback)


class OutcomeWriter:
    """Writes outcomes for the tasks this process runs; one per process, like its client."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        result_ttl_seconds: float,
        stream_maxlen: int,
        retry_pauses: Sequence[float] = RETRY_PAUSES_SECONDS,
    ) -> None:
        self.keys = keys
        self.result_ttl_ms = int(result_ttl_seconds * 1000)
        self.stream_maxlen = stream_maxlen
        self.retry_pauses = tuple(retry_pauses)
        self._finish = client.register_script(_FINISH)

    def write(
        self,
        task_id: str,
        record: str,
        events: Sequence[LifecycleEvent],
        held: HeldAttempt | None,
    ) -> bool:
        """Stores `record`, appends `events` and releases `held`'s lease, atomically; returns
        whether the outcome was written. A Redis that stays unreachable is logged, not raised:
        the lease then expires and job-service's reconciler settles the attempt."""
        lease_value = held.detach() if held is not None else None
        keys = [self.keys.result(task_id), self.keys.lease(task_id), self.keys.events_stream]
        args: list[Any] = [
            record,
            self.result_ttl_ms,
            lease_value or "",
            self.stream_maxlen,
            *(event.to_stream_fields()["e"] for event in events),
        ]
        pauses = iter(self.retry_pauses)
        while True:
            try:
                self._finish(keys=keys, args=args)
                return True
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                pause = next(pauses, None)
                if pause is None:
                    log.warning("jobs.outcome_unrecorded", job_id=task_id, error=str(exc))
                    return False
                time.sleep(pause)
            except redis.RedisError as exc:
                log.warning("jobs.outcome_unrecorded", job_id=task_id, error=str(exc))
                return False
