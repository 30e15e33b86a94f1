"""Per-process resources and worker state, shared by the Celery signal handlers, the tasks and
the health server."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from conveyor_worker.advertise import Advertiser
from conveyor_worker.config import Settings
from conveyor_worker.events import RedisEventSink
from conveyor_worker.leases import LeaseKeeper
from conveyor_worker.outcome import OutcomeWriter
from conveyor_worker.registry import TaskRegistry


class WorkerRuntime:
    """What the signal handlers, the tasks and the health server share.

    The Redis client is per process: a prefork child gets its own in `worker_process_init`
    (sockets must not be shared across a fork); the main process (solo and threads pools, the
    consumer, the heartbeat) gets one at start.
    """

    def __init__(self, settings: Settings, registry: TaskRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.keys = settings.keys
        self.worker_name: str | None = settings.worker_name
        self.ready = threading.Event()  # the consumer reached `worker_ready` once
        self.consuming = threading.Event()  # the task consumer is started (cleared on loss)
        self.advertiser: Advertiser | None = None
        self.controller: Any = None  # Celery's WorkController, in the main process
        # Run (each briefly) when the worker exits hard at the end of its shutdown grace.
        self.exit_hooks: list[Callable[[], None]] = []
        self._client: redis.Redis | None = None
        self._client_pid: int | None = None
        self._leases: LeaseKeeper | None = None
        self._outcomes: tuple[redis.Redis, OutcomeWriter] | None = None
        self._lock = threading.Lock()
        # A pool process forked while another thread (the health server) held the lock would
        # inherit it held, and wait for it forever.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _renew_lock(ref))

    def client(self) -> redis.Redis:
        """This process's client. After a fork the parent's client object came along; its
        sockets are the parent's, so the child makes its own (and never closes those)."""
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = self._new_client()
                self._client_pid = os.getpid()
            return self._client

    def _new_client(self) -> redis.Redis:
        settings = self.settings
        return redis.Redis.from_url(
            settings.redis_dsn(),
            **settings.redis_client_kwargs(
                client_name=f"conveyor-worker:{self.worker_name or 'starting'}:{os.getpid()}"
            ),
            socket_keepalive=True,
            health_check_interval=25,
            # An event lost to a blip is repaired by the reconciler, but a retry is cheaper.
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )

    def leases(self) -> LeaseKeeper:
        """This process's lease keeper (and so its lease heartbeat thread); like the client,
        a forked child makes its own."""
        client = self.client()
        with self._lock:
            if self._leases is None or self._leases.pid != os.getpid():
                settings = self.settings
                self._leases = LeaseKeeper(
                    client,
                    self.keys,
                    lease_ttl_seconds=settings.lease_ttl_seconds,
                    fence_ttl_seconds=settings.fence_ttl_seconds,
                    tick_seconds=settings.lease_tick_seconds,
                    stream_maxlen=settings.events_stream_maxlen,
                )
            return self._leases

    def outcomes(self) -> OutcomeWriter:
        """This process's outcome writer, on this process's current client."""
        client = self.client()
        with self._lock:
            if self._outcomes is None or self._outcomes[0] is not client:
                writer = OutcomeWriter(
                    client,
                    self.keys,
                    result_ttl_seconds=self.settings.result_ttl_seconds,
                    stream_maxlen=self.settings.events_stream_maxlen,
                )
                self._outcomes = (client, writer)
            return self._outcomes[1]

    def set_worker_name(self, name: str) -> None:
        """The Celery node name is known only once the worker starts; a client made before
        (by the health server) is replaced so `CLIENT LIST` shows the name."""
        with self._lock:
            self.worker_name = name
            if self._client is not None and self._client_pid == os.getpid():
                self._client.close()
            self._client = None
            self._leases = None

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._client_pid == os.getpid():
                self._client.close()
            self._client = None

    def events(self) -> RedisEventSink:
        return RedisEventSink(self.client(), self.keys, maxlen=self.settings.events_stream_maxlen)

    def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            self.client().ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        consuming = self.ready.is_set() and self.consuming.is_set()
        checks["consumer"] = "ok" if consuming else "not consuming"
        return checks


def _renew_lock(ref: weakref.ref[WorkerRuntime]) -> None:
    runtime = ref()
    if runtime is not None:
        runtime._lock = threading.Lock()
