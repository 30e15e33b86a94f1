"""The Celery signal handlers and the consumer bootstep: per-process Redis clients, catalog
advertisement and heartbeat, unknown-task reports, and whether the consumer is consuming."""

from __future__ import annotations

import os
from typing import Any

import structlog
from celery import Celery, bootsteps, signals

from conveyor_common import tracing
from conveyor_common.envelope import ENVELOPE_KWARG, TaskEnvelope
from conveyor_common.gc_pauses import freeze_startup_objects
from conveyor_common.results import TaskFailure
from conveyor_worker.advertise import Advertiser, WorkerInfo
from conveyor_worker.logs import setup_worker_logging
from conveyor_worker.runner import UNKNOWN_TASK, Failure, identity, report_failure
from conveyor_worker.runtime import WorkerRuntime
from conveyor_worker.shutdown import ShutdownGrace, pool_processes

log = structlog.get_logger("conveyor.worker")


def report_unknown_task(
    runtime: WorkerRuntime, app: Celery, message: Any, name: str, id_: str
) -> None:
    """Celery rejects a message for an unregistered task with only a log line (pitfall #14);
    when it carries our envelope, job-service hears of it as a failed attempt."""
    try:
        _args, kwargs, _embed = message.decode()
        envelope = TaskEnvelope.model_validate(kwargs[ENVELOPE_KWARG])
    except Exception:
        log.error("jobs.unknown_task", task=name, job_id=id_, envelope=False)
        return
    text = f"no task named {name!r} is registered on worker {runtime.worker_name}"
    # Retryable: in a rolling deploy another worker may know the task.
    failure = Failure(error_type=UNKNOWN_TASK, message=text, retryable=True)
    # Celery stored a bare NotRegistered record; one naming the tenant replaces it before
    # job-service hears of the failure.
    app.backend.mark_as_failure(id_, TaskFailure(envelope.tenant_id, UNKNOWN_TASK, text))
    report_failure(
        runtime.events(), identity(envelope, runtime.worker_name), failure, received=True
    )
    log.error("jobs.unknown_task", task=name, job_id=id_, tenant=envelope.tenant_id)


def consuming_step(runtime: WorkerRuntime) -> type[bootsteps.StartStopStep]:
    class ConsumingState(bootsteps.StartStopStep):  # type: ignore[misc]
        """Tracks the task consumer: Celery stops and restarts the consumer's steps around a
        lost broker connection, so readiness follows consumption (pitfall #8)."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, _parent: Any) -> None:
            runtime.consuming.set()

        def stop(self, _parent: Any) -> None:
            runtime.consuming.clear()

        def shutdown(self, _parent: Any) -> None:
            runtime.consuming.clear()

    return ConsumingState


def connect_worker_signals(app: Celery, runtime: WorkerRuntime) -> None:
    """Celery's signals are global; each handler checks that the sender belongs to `app`."""
    settings = runtime.settings

    def ours(sender: Any) -> bool:
        return getattr(sender, "app", None) is app

    def on_setup_logging(**_: Any) -> None:
        # Connecting this signal keeps Celery from configuring logging itself.
        setup_worker_logging(settings)

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if ours(sender):
            runtime.set_worker_name(sender.hostname)
            runtime.controller = sender

    def unregister() -> None:
        if runtime.advertiser is not None:
            runtime.client().delete(runtime.advertiser.worker_key)

    def process_exit_hooks() -> None:
        for hook in runtime.exit_hooks:
            hook()

    grace = ShutdownGrace(
        settings.shutdown_grace(float(app.conf.task_time_limit or 0)),
        children=lambda: pool_processes(runtime.controller),
        exit_hooks=[unregister, process_exit_hooks],
    )

    def on_shutting_down(sender: Any = None, **_: Any) -> None:
        # Sent in the main process by Celery's SIGTERM (warm) and SIGQUIT (cold) handlers; the
        # sender is the node name. From here running tasks have the grace, then the worker
        # exits hard.
        if runtime.worker_name is not None and sender == runtime.worker_name:
            grace.begin()

    def on_process_init(**_: Any) -> None:
        runtime.client()
        freeze_startup_objects()

    def on_process_shutdown(pid: int | None = None, **_: Any) -> None:
        if pid != os.getpid():
            return
        # A pool child ends without `atexit`: its last spans leave now or never.
        tracing.flush()
        runtime.close()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from prometheus_client import multiprocess

            # Drops this child's share of the live-summed gauges.
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def on_worker_ready(sender: Any = None, **_: Any) -> None:
        if not ours(sender):
            return
        controller = sender.controller
        pool_cls = getattr(controller, "pool_cls", None)
        info = WorkerInfo(
            name=sender.hostname,
            queues=[q.name for q in sender.task_consumer.queues] if sender.task_consumer else [],
            concurrency=int(getattr(controller, "concurrency", 0) or 0),
            pool=getattr(pool_cls, "__module__", str(pool_cls)).rsplit(".", 1)[-1],
            tasks=runtime.registry.names(),
        )
        runtime.advertiser = Advertiser(
            runtime.client(),
            runtime.keys,
            runtime.registry,
            info,
            interval_seconds=settings.heartbeat_interval_seconds,
            ttl_seconds=settings.worker_ttl_seconds,
            is_ready=runtime.consuming.is_set,
        )
        runtime.ready.set()
        runtime.advertiser.start()
        # The consumer's loop is where a long collection would hold up every delivery.
        freeze_startup_objects()
        log.info("worker.ready", worker=info.name, queues=info.queues, concurrency=info.concurrency)

    def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
        if not ours(sender):
            return
        # The pool has stopped: every task finished within the grace, nothing is left to cut.
        grace.cancel()
        runtime.consuming.clear()
        if runtime.advertiser is not None:
            runtime.advertiser.stop()
        log.info("worker.stopped", worker=runtime.worker_name)
        tracing.flush()
        runtime.close()

    def on_task_unknown(
        sender: Any = None, message: Any = None, name: str = "", id: str = "", **_: Any
    ) -> None:
        if ours(sender):
            report_unknown_task(runtime, app, message, name, id)

    signals.setup_logging.connect(on_setup_logging, weak=False)
    signals.worker_init.connect(on_worker_init, weak=False)
    signals.worker_process_init.connect(on_process_init, weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False)
    signals.worker_ready.connect(on_worker_ready, weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    signals.task_unknown.connect(on_task_unknown, weak=False)
