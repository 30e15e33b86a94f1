"""How long one attempt may run, and the longest `timeout_seconds` a job may ask for.

A job's `timeout_seconds` is its soft limit (Celery raises `SoftTimeLimitExceeded` in the task,
which ends the attempt as `TimeLimitExceeded`); the hard limit, after which Celery kills the
worker child, is that plus a grace for cleanup. Both travel in the message's `timelimit`.

The bound comes from the broker's visibility timeout, which the one Celery factory derives from
`CONVEYOR_MAX_TIMEOUT_SECONDS` (`conveyor_common.celery_app.visibility_timeout`): a job may ask
for at most that longest limit, and its hard limit must end before kombu would redeliver the
message of a task that is still allowed to run (pitfall #1). A job asking for more is refused
with 422; a grace that would reach past the visibility timeout is shortened to fit."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor_common.celery_app import visibility_timeout


@dataclass(frozen=True, slots=True)
class TimeLimits:
    max_timeout_seconds: int
    grace_seconds: int
    visibility_timeout_seconds: int
    # The grace asked for, when it had to be shortened to fit under the visibility timeout.
    requested_grace_seconds: int | None = None

    @classmethod
    def derive(
        cls,
        *,
        max_timeout_seconds: int,
        grace_seconds: int,
        visibility_timeout_seconds: int | None = None,
    ) -> TimeLimits:
        vt = visibility_timeout_seconds or visibility_timeout(max_timeout_seconds)
        # Hard limits end at least a second before the visibility timeout.
        room = vt - max_timeout_seconds - 1
        if room < 0:
            raise ValueError(
                f"the visibility timeout ({vt} s) is shorter than the longest time limit "
                f"({max_timeout_seconds} s)"
            )
        grace = min(grace_seconds, room)
        return cls(
            max_timeout_seconds=max_timeout_seconds,
            grace_seconds=grace,
            visibility_timeout_seconds=vt,
            requested_grace_seconds=grace_seconds if grace < grace_seconds else None,
        )

    def soft(self, timeout_seconds: int) -> int:
        return timeout_seconds

    def hard(self, timeout_seconds: int) -> int:
        return timeout_seconds + self.grace_seconds

    @property
    def marker_ttl_seconds(self) -> int:
        """TTL of the per-job cancel key (and the worker's fence): as long as any copy of the
        job's message can still be delivered, twice over."""
        return 2 * self.visibility_timeout_seconds
