"""The Celery app the worker builds (no broker contacted: nothing here connects)."""

from __future__ import annotations

import uuid

import pytest
from celery.exceptions import Reject

from conveyor_common.celery_app import celery_config
from conveyor_common.envelope import TaskEnvelope
from conveyor_worker import app as app_module
from conveyor_worker.__main__ import worker_argv
from conveyor_worker.app import create_worker_app
from conveyor_worker.config import Settings
from conveyor_worker.discovery import collect


def test_one_celery_task_per_registry_entry_under_the_same_name():
    settings = Settings(redis_namespace="ns1", redis_url="redis://127.0.0.1:1/0")
    registry = collect(entry_point_list=[])
    app, runtime = create_worker_app(settings, registry, connect_signals=False)
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == set(registry.names())
    assert app.tasks["http.request"].name == "http.request"
    assert runtime.keys.namespace == "ns1"


def test_reliability_options_come_from_the_common_factory_unchanged():
    settings = Settings(redis_namespace="ns2", redis_url="redis://127.0.0.1:1/0")
    app, _ = create_worker_app(settings, collect(entry_point_list=[]), connect_signals=False)
    expected = celery_config(
        broker_url="redis://127.0.0.1:1/0",
        result_backend_url="redis://127.0.0.1:1/0",
        namespace="ns2",
    )
    for key in (
        "task_acks_late",
        "task_reject_on_worker_lost",
        "worker_prefetch_multiplier",
        "broker_transport_options",
        "result_backend_transport_options",
        "accept_content",
        "task_time_limit",
    ):
        assert app.conf[key] == expected[key], key
    # No task overrides them either.
    for task in app.tasks.values():
        if not task.name.startswith("celery."):
            assert task.acks_late is True
            assert task.reject_on_worker_lost is True
            # Celery stores nothing itself: the task's hooks write the outcome (outcome.py).
            assert task.ignore_result is True
            assert task.store_errors_even_if_ignored is False


def test_readiness_says_not_consuming_before_the_worker_runs():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.2)
    _, runtime = create_worker_app(settings, collect(entry_point_list=[]), connect_signals=False)
    checks = runtime.readiness()
    assert checks["consumer"] == "not consuming"
    assert checks["redis"].startswith("unavailable")


def test_worker_command_line():
    argv = worker_argv(
        queues=["default", "images"], concurrency=4, pool="solo", name="n@h", loglevel="info"
    )
    assert argv[0] == "worker"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["--queues"] == "default,images"
    assert pairs["--concurrency"] == "4"
    assert pairs["--pool"] == "solo"
    assert pairs["--hostname"] == "n@h"
    assert pairs["--loglevel"] == "INFO"


def test_a_fence_redis_cannot_answer_sends_the_message_back(monkeypatch):
    # Whether the attempt may run is unknown: neither run it nor store anything, but give the
    # message back to its queue (after a pause, so an outage is not a busy loop).
    monkeypatch.setattr(app_module, "LEASE_RETRY_PAUSE_SECONDS", 0)
    settings = Settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.2)
    app, _ = create_worker_app(settings, collect(entry_point_list=[]), connect_signals=False)
    envelope = TaskEnvelope(
        job_id=uuid.uuid4(), tenant_id="acme", task="echo", attempt=1, timeout_seconds=5
    )
    with pytest.raises(Reject) as caught:
        app.tasks["echo"].run(job=envelope.model_dump(mode="json"))
    assert caught.value.requeue is True
