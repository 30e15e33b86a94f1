"""The worker's Celery app: one Celery task per registry entry, under the same name job-service
publishes by (job-service never imports this package).

Every reliability option comes from `conveyor_common.celery_app.create_celery_app`; nothing here
sets one (pitfall #21).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog
from celery import Celery, Task
from celery.exceptions import Ignore, Reject, TimeLimitExceeded

from conveyor_common.celery_app import create_celery_app
from conveyor_common.envelope import ENVELOPE_KWARG, TaskEnvelope
from conveyor_common.events import LifecycleEvent
from conveyor_common.results import TaskFailure
from conveyor_worker.config import Settings
from conveyor_worker.events import DeferredFinalSink
from conveyor_worker.leases import HeldAttempt, LeaseKeeper, LeaseUnavailable, Skipped
from conveyor_worker.metrics import TASKS, Outcome
from conveyor_worker.outcome import OutcomeWriter, failure_record, success_record
from conveyor_worker.registry import RegisteredTask, TaskRegistry
from conveyor_worker.runner import (
    TIME_LIMIT_EXCEEDED,
    AttemptSkipped,
    Failure,
    identity,
    report_failure,
    run_job,
)
from conveyor_worker.runtime import WorkerRuntime
from conveyor_worker.signals import connect_worker_signals, consuming_step

log = structlog.get_logger("conveyor.worker")
PENDING_ATTR = "conveyor_invocation"
# Redis did not answer the fence: the message goes back to its queue after this pause, so an
# outage does not turn into a busy loop of deliveries.
LEASE_RETRY_PAUSE_SECONDS = 1.0


class Invocation:
    """One run of a Conveyor task under Celery: the final event held back until the task's
    outcome is known, then written with the result record and the release of the attempt's
    lease in one round trip (`outcome.OutcomeWriter`). It is the runner's `AttemptGuard`, so it
    knows which attempt it holds."""

    def __init__(
        self, events: DeferredFinalSink, leases: LeaseKeeper, outcomes: OutcomeWriter
    ) -> None:
        self.events = events
        self.leases = leases
        self.outcomes = outcomes
        self.held: HeldAttempt | None = None
        self.value: dict[str, Any] | None = None  # the StoredResult of a success

    def acquire(
        self, envelope: TaskEnvelope, worker: str | None, started: Sequence[LifecycleEvent]
    ) -> HeldAttempt | Skipped:
        claim = self.leases.acquire(envelope, worker, started)
        if isinstance(claim, HeldAttempt):
            self.held = claim
        return claim

    def finish(self, task_id: str, record: str) -> None:
        try:
            self.outcomes.write(task_id, record, self.events.take(), self.held)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Stops renewing the lease without deleting it: it expires by itself. (A no-op once
        released.) Renewing the lease of an attempt nobody will finish would hide it from
        job-service's reconciler forever."""
        if self.held is not None:
            self.held.abandon()


class ConveyorTask(Task):  # type: ignore[misc]
    """Base of every Conveyor task. `runtime` is set on a per-app subclass.

    Registered with `ignore_result=True`: Celery stores nothing, these hooks write the outcome
    (Celery calls them once the task returned or raised)."""

    runtime: WorkerRuntime

    def _take_invocation(self) -> Invocation | None:
        invocation = getattr(self.request, PENDING_ATTR, None)
        setattr(self.request, PENDING_ATTR, None)
        return invocation if isinstance(invocation, Invocation) else None

    def on_success(self, _retval: Any, task_id: str, _args: Any, _kwargs: Any) -> None:
        invocation = self._take_invocation()
        if invocation is not None:
            invocation.finish(task_id, success_record(task_id, invocation.value))

    def on_failure(
        self, exc: BaseException, task_id: str, _args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # In the main process, this is also how a child killed at the hard time limit is
        # reported: that task never got to say anything.
        if isinstance(exc, TimeLimitExceeded):
            report_hard_time_limit(self, self.runtime, task_id, kwargs, exc)
            return
        # A TaskFailure names the tenant, for the result-service's check; any other exception
        # is stored as Celery would have stored it.
        record = failure_record(
            task_id, self.backend.prepare_exception(exc), getattr(einfo, "traceback", None)
        )
        invocation = self._take_invocation()
        if invocation is not None:
            invocation.finish(task_id, record)
        else:
            self.runtime.outcomes().write(task_id, record, (), None)


def report_hard_time_limit(
    task: Task, runtime: WorkerRuntime, task_id: str, kwargs: Any, exc: BaseException
) -> None:
    try:
        envelope = TaskEnvelope.model_validate((kwargs or {}).get(ENVELOPE_KWARG))
    except Exception:
        log.error("jobs.hard_time_limit_unreported", job_id=task_id, reason="no valid envelope")
        return
    message = f"killed at the hard time limit ({exc})"
    failure = Failure(error_type=TIME_LIMIT_EXCEEDED, message=message, retryable=True)
    try:
        # Replace Celery's bare TimeLimitExceeded record with one that names the tenant, then
        # tell job-service (result first, as for every final event).
        task.backend.mark_as_failure(
            task_id, TaskFailure(envelope.tenant_id, TIME_LIMIT_EXCEEDED, message)
        )
        report_failure(runtime.events(), identity(envelope, runtime.worker_name), failure)
    except Exception:
        log.exception("jobs.hard_time_limit_unreported", job_id=task_id)
        return
    # The lease is left to expire: billiard calls this before it kills the child, whose
    # heartbeat could set a lease deleted now once more. Nothing waits for it: the failed event
    # ends the attempt, and the next attempt's acquire does not look at leases.
    TASKS.labels(envelope.task, envelope.queue, Outcome.FAILED).inc()
    log.warning(
        "jobs.failed",
        job_id=task_id,
        task=envelope.task,
        tenant=envelope.tenant_id,
        attempt=envelope.attempt,
        error_type=TIME_LIMIT_EXCEEDED,
        error=message,
    )


def _register(
    app: Celery, base: type[ConveyorTask], task: RegisteredTask, runtime: WorkerRuntime
) -> None:
    def run(self: Task, *_args: Any, **kwargs: Any) -> None:
        invocation = Invocation(
            DeferredFinalSink(runtime.events()), runtime.leases(), runtime.outcomes()
        )
        # `self.request` is this invocation's context (thread-local), where on_success and
        # on_failure find the held-back final event and the lease.
        setattr(self.request, PENDING_ATTR, invocation)
        try:
            # Kept for on_success, not returned: Celery, storing nothing, would only repr the
            # value and pickle it over the pool's pipe to the main process, which drops it.
            invocation.value = run_job(
                task,
                kwargs.get(ENVELOPE_KWARG),
                events=invocation.events,
                attempts=invocation,
                worker=self.request.hostname or runtime.worker_name,
            )
        except AttemptSkipped as exc:
            # Acked, and nothing stored: a result now could overwrite the outcome of the
            # attempt that did run. (A lease lost mid-run is another holder's now: left alone.)
            invocation.abandon()
            raise Ignore() from exc
        except LeaseUnavailable as exc:
            log.warning("jobs.fence_unavailable", error=str(exc))
            time.sleep(LEASE_RETRY_PAUSE_SECONDS)
            raise Reject(str(exc), requeue=True) from exc
        except Exception:
            raise  # on_failure finishes the invocation
        except BaseException:
            # SystemExit and the like skip on_failure; the lease must not outlive the attempt.
            invocation.abandon()
            raise

    run.__name__ = run.__qualname__ = (
        task.name.replace(".", "_").replace(":", "_").replace("-", "_")
    )
    run.__doc__ = task.description
    # `throws`: a TaskFailure is an expected outcome, logged without Celery's traceback.
    # `shared=False`: a shared task would be added to every Celery app this process makes.
    # `ignore_result`: the outcome is written by ConveyorTask's hooks (see there).
    app.task(
        name=task.name,
        bind=True,
        base=base,
        throws=(TaskFailure,),
        typing=False,
        shared=False,
        ignore_result=True,
    )(run)


def create_worker_app(
    settings: Settings, registry: TaskRegistry, *, connect_signals: bool = True
) -> tuple[Celery, WorkerRuntime]:
    app = create_celery_app(
        "conveyor-worker",
        broker_url=settings.redis_dsn(),
        broker_use_ssl=settings.celery_redis_ssl(),
        redis_backend_use_ssl=settings.celery_redis_ssl(),
        result_ttl_seconds=settings.result_ttl_seconds,
        max_timeout_seconds=settings.max_timeout_seconds,
        visibility_margin_seconds=settings.visibility_margin_seconds,
        namespace=settings.redis_namespace,
    )
    runtime = WorkerRuntime(settings, registry)
    base = type("ConveyorAppTask", (ConveyorTask,), {"runtime": runtime, "abstract": True})
    for task in registry:
        _register(app, base, task, runtime)
    app.steps["consumer"].add(consuming_step(runtime))
    if connect_signals:
        connect_worker_signals(app, runtime)
    return app, runtime
