"""Attempt fences and leases in Redis: each attempt of a job runs at most once, ever, and never
while another copy of it runs.

Keys (`conveyor_common.redis_keys.RedisKeys`): `fence:<job>` holds the highest attempt number a
worker ever started for the job; `lease:<job>` holds `"<attempt>:<worker>"` while that attempt
runs (TTL `CONVEYOR_LEASE_TTL_SECONDS`); `cancel:<job>` exists once job-service cancelled it.

Before a task runs, ONE Lua script decides, atomically: the cancel key exists → skip
("cancelled"); fence >= attempt → skip ("already-started": a redelivery of an attempt that ran or
runs); else fence = attempt, lease set, and the attempt's `received` and `started` events are
appended in the same script, so a `started` event exists exactly when the fence moved.

While the task runs, one heartbeat thread in its process renews the leases of every attempt
running there and looks at their cancel keys. A lease that vanished (Redis restarted empty) is
set again, and the fence with it. A cancelled job's task is interrupted; so is one whose lease
another holder took (job-service gave up on this attempt and started the next one, or Redis
lost the fence and another copy of this attempt started): that copy then reports a `skipped`
event (`lease-lost`) and stores nothing, leaving the outcome to the holder. When the attempt
ends the lease is deleted by compare-and-delete (with the outcome, `outcome.py`), so one attempt
never deletes another's lease.
A process that dies holds its lease only until the TTL runs out: job-service's reconciler then
decides what comes next.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
import structlog

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.interrupt import Interruptible

log = structlog.get_logger("conveyor.worker")

SkipReason = Literal["cancelled", "already-started"]
CANCELLED: SkipReason = "cancelled"
ALREADY_STARTED: SkipReason = "already-started"
LEASE_LOST = "lease-lost"

# KEYS: cancel, fence, lease, events stream.
# ARGV: attempt, lease value, lease TTL ms, fence TTL ms, stream maxlen, event payloads...
_ACQUIRE = """
local attempt = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 'cancelled' end
local fence = redis.call('GET', KEYS[2])
if fence and tonumber(fence) >= attempt then return 'already-started' end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
for i = 6, #ARGV do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[i])
end
return 'acquired'
"""

# KEYS: lease, fence, cancel of each attempt. ARGV: lease TTL ms, fence TTL ms, then the lease
# value and attempt of each. Returns, per attempt, the lease state (0 renewed, 1 set again after
# it vanished, 2 lost to another attempt) and whether the job is cancelled (0/1).
_HEARTBEAT = """
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local lease, fence, cancel = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local value, attempt = ARGV[2 * i + 3], tonumber(ARGV[2 * i + 4])
  local current = redis.call('GET', lease)
  local started = tonumber(redis.call('GET', fence) or '0')
  local state = 2
  if current == value then
    redis.call('PEXPIRE', lease, ARGV[1])
    state = 0
  elseif not current and started <= attempt then
    redis.call('SET', lease, value, 'PX', ARGV[1])
    state = 1
  end
  if state ~= 2 and started < attempt then
    redis.call('SET', fence, attempt, 'PX', ARGV[2])
  end
  out[2 * i + 1] = state
  out[2 * i + 2] = redis.call('EXISTS', cancel)
end
return out
"""

# KEYS: lease. ARGV: the value this attempt set.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEWED, _RESTORED, _LOST = 0, 1, 2


class LeaseUnavailable(Exception):
    """Redis did not answer the acquire script: whether the attempt may run is unknown."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """The attempt must not run; `reason` is `cancelled` or `already-started`."""

    reason: SkipReason


def lease_value(attempt: int, worker: str | None) -> str:
    return f"{attempt}:{worker or 'unknown'}"


class HeldAttempt:
    """An attempt that passed the fence and holds its lease in this process.

    `interruptible` is the region the task function runs in; the heartbeat interrupts it when the
    job is cancelled (`cancelled`) or another attempt took the lease (`lost`)."""

    def __init__(
        self, job_id: str, attempt: int, value: str, keeper: LeaseKeeper | None = None
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.value = value
        self.cancelled = False
        self.lost = False
        self.interruptible = Interruptible()
        self._keeper = keeper
        self._released = False

    def stop(self, reason: str) -> bool:
        """Marks the attempt cancelled (`reason="cancelled"`) or lost, and interrupts the task
        if it is running; returns whether it was interrupted."""
        if reason == CANCELLED:
            self.cancelled = True
        else:
            self.lost = True
        return self.interruptible.interrupt(reason)

    def detach(self) -> str | None:
        """Stops the renewals and hands the lease over to whoever deletes it in the same round
        trip as the attempt's outcome (`outcome.OutcomeWriter`): returns the value to
        compare-and-delete, or None when the lease was already released or abandoned."""
        if self._released or self._keeper is None:
            return None
        self._released = True
        self._keeper.forget(self)
        return self.value

    def abandon(self) -> None:
        """Stops the renewals and leaves the lease to expire."""
        if self._released or self._keeper is None:
            return
        self._released = True
        self._keeper.forget(self)

    def release(self) -> None:
        """Stops the renewals and deletes the lease if it is still this attempt's."""
        if self._released or self._keeper is None:
            return
        self._released = True
        self._keeper.forget(self)
        release_lease(self._keeper.client, self._keeper.keys, self.job_id, self.value)


def release_lease(client: redis.Redis, keys: RedisKeys, job_id: str, value: str) -> bool:
    """Deletes `lease:<job_id>` only if it still holds `value`; True when it did. Errors are
    logged, not raised: an undeleted lease expires by itself."""
    try:
        return bool(client.eval(_RELEASE, 1, keys.lease(job_id), value))
    except redis.RedisError as exc:
        log.warning("jobs.lease_release_failed", job_id=job_id, error=str(exc))
        return False


class LeaseKeeper:
    """Acquires attempts for the tasks this process runs and keeps their leases alive.

    One per process (see `WorkerRuntime.leases`): the heartbeat thread is started on first use,
    in the process that runs tasks (a prefork child, or the main process of the solo and threads
    pools), never before a fork."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        lease_ttl_seconds: float,
        fence_ttl_seconds: float,
        tick_seconds: float | None = None,
        stream_maxlen: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.lease_ttl_ms = int(lease_ttl_seconds * 1000)
        self.fence_ttl_ms = int(fence_ttl_seconds * 1000)
        self.tick_seconds = tick_seconds if tick_seconds is not None else lease_ttl_seconds / 3
        self.stream_maxlen = stream_maxlen
        self.pid = os.getpid()
        self._acquire = client.register_script(_ACQUIRE)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._held: dict[int, HeldAttempt] = {}
        # Held across a whole heartbeat round, so a released lease is never set again by a
        # round that read the held set just before the release.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(
        self, envelope: TaskEnvelope, worker: str | None, started: Sequence[LifecycleEvent]
    ) -> HeldAttempt | Skipped:
        """Runs the acquire script; `started` (the `received` and `started` events) is appended
        to the lifecycle stream only when the attempt is granted. Raises `LeaseUnavailable`
        when Redis does not answer."""
        job_id = str(envelope.job_id)
        value = lease_value(envelope.attempt, worker)
        args: list[Any] = [
            envelope.attempt,
            value,
            self.lease_ttl_ms,
            self.fence_ttl_ms,
            self.stream_maxlen,
            *(event.to_stream_fields()["e"] for event in started),
        ]
        keys = [
            self.keys.cancel(job_id),
            self.keys.fence(job_id),
            self.keys.lease(job_id),
            self.keys.events_stream,
        ]
        try:
            answer = self._acquire(keys=keys, args=args)
        except redis.RedisError as exc:
            raise LeaseUnavailable(str(exc)) from exc
        decision = answer.decode() if isinstance(answer, bytes) else str(answer)
        if decision == CANCELLED:
            return Skipped(CANCELLED)
        if decision == ALREADY_STARTED:
            return Skipped(ALREADY_STARTED)
        held = HeldAttempt(job_id, envelope.attempt, value, self)
        with self._lock:
            self._held[id(held)] = held
        self._ensure_thread()
        return held

    def forget(self, held: HeldAttempt) -> None:
        """Stops renewing `held` (waits for a heartbeat round in progress to end)."""
        with self._lock:
            self._held.pop(id(held), None)

    def held(self) -> list[HeldAttempt]:
        with self._lock:
            return list(self._held.values())

    def beat(self) -> None:
        """One heartbeat round: renew every held lease, stop the tasks of cancelled jobs and of
        attempts that lost their lease. Raises `redis.RedisError`."""
        with self._lock:
            held = list(self._held.values())
            if not held:
                return
            keys: list[str] = []
            args: list[Any] = [self.lease_ttl_ms, self.fence_ttl_ms]
            for attempt in held:
                keys += [
                    self.keys.lease(attempt.job_id),
                    self.keys.fence(attempt.job_id),
                    self.keys.cancel(attempt.job_id),
                ]
                args += [attempt.value, attempt.attempt]
            answer = self._heartbeat(keys=keys, args=args)
            for index, attempt in enumerate(held):
                state, cancelled = int(answer[2 * index]), int(answer[2 * index + 1])
                self._apply(attempt, state, bool(cancelled))

    def _apply(self, attempt: HeldAttempt, state: int, cancelled: bool) -> None:
        fields = {"job_id": attempt.job_id, "attempt": attempt.attempt}
        if state == _RESTORED:
            log.info("jobs.lease_restored", **fields)
        if cancelled and not attempt.cancelled:
            interrupted = attempt.stop(CANCELLED)
            log.info("jobs.cancel_seen", interrupted=interrupted, **fields)
        elif state == _LOST and not attempt.lost and not attempt.cancelled:
            interrupted = attempt.stop(LEASE_LOST)
            log.warning("jobs.lease_lost", interrupted=interrupted, **fields)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="conveyor-lease-heartbeat", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        next_beat = time.monotonic() + self.tick_seconds
        while not self._stop.wait(max(0.0, next_beat - time.monotonic())):
            next_beat = time.monotonic() + self.tick_seconds
            try:
                self.beat()
            except redis.RedisError as exc:
                # The lease expires if this keeps failing, which is the truth: this process is
                # cut off, and job-service must not wait for it forever.
                log.warning("jobs.lease_renewal_failed", error=str(exc))
            except Exception:
                log.exception("jobs.lease_heartbeat_error")

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
