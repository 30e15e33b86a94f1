"""The reliability settings every Conveyor process shares (docs: pitfalls #1, #3, #6, #21, #23)."""

from __future__ import annotations

import pytest

from conveyor_common import limits
from conveyor_common.celery_app import celery_config, create_celery_app, visibility_timeout
from conveyor_common.redis_keys import RedisKeys

BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def config():
    return celery_config(broker_url=BROKER, result_backend_url=BROKER, namespace="ns")


def test_json_only(config):
    assert config["task_serializer"] == "json"
    assert config["result_serializer"] == "json"
    assert config["event_serializer"] == "json"
    assert config["accept_content"] == ["json"]
    assert config["result_accept_content"] == ["json"]


def test_at_least_once_delivery(config):
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is True


def test_visibility_timeout_outlasts_every_time_limit_in_both_transports(config):
    broker_vt = config["broker_transport_options"]["visibility_timeout"]
    backend_vt = config["result_backend_transport_options"]["visibility_timeout"]
    assert broker_vt == backend_vt == visibility_timeout()
    assert broker_vt > config["task_time_limit"] > limits.MAX_TIMEOUT_SECONDS


@pytest.mark.parametrize("max_timeout", [60, 600, 7_200])
def test_visibility_timeout_follows_the_longest_allowed_limit(max_timeout):
    config = celery_config(
        broker_url=BROKER, result_backend_url=BROKER, max_timeout_seconds=max_timeout
    )
    assert config["broker_transport_options"]["visibility_timeout"] > config["task_time_limit"]
    assert config["task_time_limit"] > max_timeout


def test_broker_connection_is_retried_forever(config):
    assert config["broker_connection_retry"] is True
    assert config["broker_connection_retry_on_startup"] is True
    assert config["broker_connection_max_retries"] is None


def test_namespace_prefixes_queues_and_results_in_both_transports(config):
    prefix = RedisKeys("ns").celery_prefix
    assert config["broker_transport_options"]["global_keyprefix"] == prefix
    assert config["result_backend_transport_options"]["global_keyprefix"] == prefix
    # Separate dicts: a later change to one must not silently change the other.
    assert config["broker_transport_options"] is not config["result_backend_transport_options"]


def test_factory_applies_the_config():
    app = create_celery_app("t", broker_url=BROKER, namespace="ns", result_ttl_seconds=60)
    expected = celery_config(
        broker_url=BROKER, result_backend_url=BROKER, namespace="ns", result_ttl_seconds=60
    )
    for key, value in expected.items():
        assert app.conf[key] == value, key
