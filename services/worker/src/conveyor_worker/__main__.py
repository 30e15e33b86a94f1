"""`python -m conveyor_worker`: the Celery worker plus the health/metrics HTTP server.

Celery's own worker installs the signal handlers, so SIGTERM to this process (PID 1 in a pod)
is a warm shutdown: running tasks finish, nothing new is taken, within
`CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS` (see `shutdown`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _ensure_multiproc_dir() -> str | None:
    """Prefork children count jobs in their own processes; prometheus_client's multiprocess
    mode merges them, and it must be chosen before prometheus_client is first imported. Returns
    the directory when this process made it (and so removes it at exit)."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    path = tempfile.mkdtemp(prefix="conveyor-worker-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def worker_argv(
    *, queues: Sequence[str], concurrency: int, pool: str, name: str, loglevel: str
) -> list[str]:
    return [
        "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--hostname", name,
        "--loglevel", loglevel.upper(),
        # Conveyor keeps its own registry of live workers; Celery's broadcasts add start-up
        # delay and Redis traffic for nothing here.
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]  # fmt: skip


def main() -> None:
    own_metrics_dir = _ensure_multiproc_dir()
    # Imported only now: these import prometheus_client, which reads the variable above.
    import structlog

    from conveyor_common.tracing import configure_tracing
    from conveyor_worker.app import create_worker_app
    from conveyor_worker.config import get_settings
    from conveyor_worker.discovery import collect
    from conveyor_worker.health import HealthServer
    from conveyor_worker.logs import SERVICE, setup_worker_logging

    settings = get_settings()
    setup_worker_logging(settings)
    # Before the pool forks: children inherit the provider, and the SDK's batch processor
    # restarts its export thread in each child.
    configure_tracing(SERVICE, settings)
    log = structlog.get_logger("conveyor.worker")
    registry = collect(http_policy=settings.http_policy(), task_modules=settings.task_modules)
    app, runtime = create_worker_app(settings, registry)
    queues = settings.effective_queues(registry.queues())
    name = settings.worker_name or f"conveyor@%h-{os.getpid()}"
    log.info(
        "worker.starting",
        queues=queues,
        pool=settings.pool,
        concurrency=settings.effective_concurrency,
        tasks=registry.names(),
        namespace=settings.redis_namespace,
        # Must exceed the longest time limit, or running tasks are delivered twice (pitfall #1).
        visibility_timeout_seconds=app.conf.broker_transport_options["visibility_timeout"],
        result_backend_visibility_timeout_seconds=app.conf.result_backend_transport_options[
            "visibility_timeout"
        ],
        max_timeout_seconds=settings.max_timeout_seconds,
        hard_time_limit_ceiling_seconds=app.conf.task_time_limit,
        lease_ttl_seconds=settings.lease_ttl_seconds,
        shutdown_grace_seconds=settings.shutdown_grace(float(app.conf.task_time_limit)),
    )
    if own_metrics_dir is not None:
        # Also when the worker exits hard at the end of its shutdown grace (no `finally` then).
        runtime.exit_hooks.append(lambda: shutil.rmtree(own_metrics_dir, ignore_errors=True))
    health = None
    if settings.port:
        health = HealthServer(settings.host, settings.port, runtime.readiness).start()
    try:
        app.worker_main(
            worker_argv(
                queues=queues,
                concurrency=settings.effective_concurrency,
                pool=settings.pool,
                name=name,
                loglevel=settings.log_level,
            )
        )
    finally:
        if health is not None:
            health.stop()
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
