"""The one Celery app factory. Every reliability setting Conveyor depends on is set here and
nowhere else, so workers, job-service and tests can never disagree (pitfall #21)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from conveyor_common import limits
from conveyor_common.redis_keys import DEFAULT_NAMESPACE, RedisKeys

DEFAULT_QUEUE = "default"
# Hard-limit kill of the task comes first; the broker must not redeliver a message whose task is
# still allowed to run (pitfall #1), so the visibility timeout is the longest allowed time limit
# plus a margin for the worker's soft shutdown and the clock.
VISIBILITY_MARGIN_SECONDS = 600

# Every setting that chooses how messages, results and events are (de)serialised. Anything but
# JSON lets whoever can write to Redis run code in the worker (pitfall #23).
SERIALIZER_SETTINGS = (
    "task_serializer",
    "result_serializer",
    "event_serializer",
    "accept_content",
    "result_accept_content",
)
_JSON_NAMES = frozenset({"json", "application/json"})


class UnsafeSerializerError(ValueError):
    """A Celery configuration asked for a serializer other than JSON."""


def ensure_json_only(config: Mapping[str, Any]) -> None:
    """Raises `UnsafeSerializerError` if any serializer setting in `config` allows anything but
    JSON. `result_accept_content` may be None (it then follows `accept_content`)."""
    for name in SERIALIZER_SETTINGS:
        if name not in config:
            continue
        value = config[name]
        if value is None and name == "result_accept_content":
            continue
        names = [value] if isinstance(value, str) else value
        if (
            not isinstance(names, list | tuple | set | frozenset)
            or not names
            or not all(isinstance(n, str) and n.lower() in _JSON_NAMES for n in names)
        ):
            raise UnsafeSerializerError(
                f"Celery setting {name}={value!r} is refused: Conveyor accepts JSON only "
                "(pickle or yaml from a broker is remote code execution)"
            )


def visibility_timeout(
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS,
    margin_seconds: int = VISIBILITY_MARGIN_SECONDS,
) -> int:
    return max_timeout_seconds + margin_seconds


def celery_config(
    *,
    broker_url: str,
    result_backend_url: str,
    result_ttl_seconds: int = 86_400,
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS,
    visibility_margin_seconds: int = VISIBILITY_MARGIN_SECONDS,
    namespace: str = DEFAULT_NAMESPACE,
    broker_use_ssl: Mapping[str, Any] | None = None,
    redis_backend_use_ssl: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`broker_use_ssl`/`redis_backend_use_ssl` come from `RedisSettings.celery_redis_ssl()`
    for a `rediss://` URL (kombu would otherwise connect without verifying the server)."""
    vt = visibility_timeout(max_timeout_seconds, visibility_margin_seconds)
    transport_options: dict[str, Any] = {
        "visibility_timeout": vt,
        "global_keyprefix": RedisKeys(namespace).celery_prefix,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "retry_on_timeout": True,
    }
    config: dict[str, Any] = {
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
    if broker_use_ssl:
        config["broker_use_ssl"] = dict(broker_use_ssl)
    if redis_backend_use_ssl:
        config["redis_backend_use_ssl"] = dict(redis_backend_use_ssl)
    return config


def create_celery_app(
    name: str,
    *,
    broker_url: str,
    result_backend_url: str | None = None,
    result_ttl_seconds: int = 86_400,
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS,
    visibility_margin_seconds: int = VISIBILITY_MARGIN_SECONDS,
    namespace: str = DEFAULT_NAMESPACE,
    broker_use_ssl: Mapping[str, Any] | None = None,
    redis_backend_use_ssl: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Celery:
    """The Celery app. Without its own `result_backend_url` the backend is the broker's Redis
    and, unless given, uses the broker's TLS options. `overrides` are applied last, but may not
    loosen the serializers (`UnsafeSerializerError`)."""
    if redis_backend_use_ssl is None and result_backend_url is None:
        redis_backend_use_ssl = broker_use_ssl
    config = celery_config(
        broker_url=broker_url,
        result_backend_url=result_backend_url or broker_url,
        result_ttl_seconds=result_ttl_seconds,
        max_timeout_seconds=max_timeout_seconds,
        visibility_margin_seconds=visibility_margin_seconds,
        namespace=namespace,
        broker_use_ssl=broker_use_ssl,
        redis_backend_use_ssl=redis_backend_use_ssl,
    )
    if overrides:
        ensure_json_only(overrides)
        config.update(overrides)
    app = Celery(name, set_as_current=False)
    app.conf.update(config)
    ensure_json_only(app.conf)
    return app
