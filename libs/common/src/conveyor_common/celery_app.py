"""The one Celery app factory. Every reliability setting Conveyor depends on is set here and
nowhere else, so workers, job-service and tests can never disagree (pitfall #21)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from conveyor_common import limits
from conveyor_common.redis_keys import DEFAULT_NAMESPACE, RedisKeys

DEFAULT_QUEUE = "default"
# Hard-limit kill of the task comes first; the broker must not redeliver a message whose task is
# still allowed to run (pitfall #1), so the visibility timeout is the longest allowed time limit
# plus a margin for the worker's soft shutdown and the clock.
VISIBILITY_MARGIN_SECONDS = 600


def visibility_timeout(max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS) -> int:
    return max_timeout_seconds + VISIBILITY_MARGIN_SECONDS


def celery_config(
    *,
    broker_url: str,
    result_backend_url: str,
    result_ttl_seconds: int = 86_400,
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    vt = visibility_timeout(max_timeout_seconds)
    transport_options: dict[str, Any] = {
        "visibility_timeout": vt,
        "global_keyprefix": RedisKeys(namespace).celery_prefix,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "retry_on_timeout": True,
    }
    return {
        "broker_url": broker_url,
        "result_backend": result_backend_url,
        # JSON only: pickle from a broker is remote code execution (pitfall #23).
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # At-least-once: ack after the task ran; a killed child means redelivery, not loss.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": dict(transport_options),
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # never give up on the broker
        "broker_channel_error_retry": True,
        "result_expires": result_ttl_seconds,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "task_default_queue": DEFAULT_QUEUE,
        "task_create_missing_queues": True,
        "task_track_started": False,  # Conveyor's own lifecycle events say when a task started
        "task_send_sent_event": False,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_enable_remote_control": True,
        "worker_deduplicate_successful_tasks": False,
        "task_time_limit": max_timeout_seconds + 30,
        "broker_pool_limit": 10,
    }


def create_celery_app(
    name: str,
    *,
    broker_url: str,
    result_backend_url: str | None = None,
    result_ttl_seconds: int = 86_400,
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS,
    namespace: str = DEFAULT_NAMESPACE,
) -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(
        celery_config(
            broker_url=broker_url,
            result_backend_url=result_backend_url or broker_url,
            result_ttl_seconds=result_ttl_seconds,
            max_timeout_seconds=max_timeout_seconds,
            namespace=namespace,
        )
    )
    return app
