"""The Celery factory accepts JSON only, whatever a caller passes (pitfall #23), and carries the
TLS options of a `rediss://` broker to both kombu and the result backend."""

from __future__ import annotations

import ssl

import pytest

from conveyor_common.celery_app import (
    UnsafeSerializerError,
    celery_config,
    create_celery_app,
    ensure_json_only,
)

BROKER = "redis://127.0.0.1:1/0"
TLS_BROKER = "rediss://127.0.0.1:1/0"
SSL_OPTIONS = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"task_serializer": "pickle"},
        {"result_serializer": "yaml"},
        {"event_serializer": "msgpack"},
        {"accept_content": ["json", "pickle"]},
        {"accept_content": ["application/x-python-serialize"]},
        {"result_accept_content": ["yaml"]},
        {"accept_content": []},
        {"accept_content": "pickle"},
    ],
)
def test_any_serializer_but_json_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(UnsafeSerializerError, match="JSON only"):
        create_celery_app("t", broker_url=BROKER, overrides=overrides)


def test_harmless_overrides_apply() -> None:
    app = create_celery_app(
        "t",
        broker_url=BROKER,
        overrides={"accept_content": ["application/json"], "worker_prefetch_multiplier": 1},
    )
    assert app.conf.accept_content == ["application/json"]
    assert app.conf.task_serializer == "json"


def test_the_check_reads_a_whole_config() -> None:
    ensure_json_only(celery_config(broker_url=BROKER, result_backend_url=BROKER))
    with pytest.raises(UnsafeSerializerError, match="task_serializer"):
        ensure_json_only({"task_serializer": "pickle"})


def test_no_tls_options_without_tls() -> None:
    config = celery_config(broker_url=BROKER, result_backend_url=BROKER)
    assert "broker_use_ssl" not in config
    assert "redis_backend_use_ssl" not in config


def test_broker_tls_options_reach_the_shared_result_backend() -> None:
    app = create_celery_app("t", broker_url=TLS_BROKER, broker_use_ssl=SSL_OPTIONS)
    assert app.conf.broker_use_ssl == SSL_OPTIONS
    assert app.conf.redis_backend_use_ssl == SSL_OPTIONS


def test_a_separate_backend_takes_its_own_tls_options() -> None:
    backend_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    app = create_celery_app(
        "t",
        broker_url=TLS_BROKER,
        result_backend_url="rediss://other:1/0",
        broker_use_ssl=SSL_OPTIONS,
        redis_backend_use_ssl=backend_ssl,
    )
    assert app.conf.broker_use_ssl == SSL_OPTIONS
    assert app.conf.redis_backend_use_ssl == backend_ssl
