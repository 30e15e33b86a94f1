"""The bound on `timeout_seconds` follows the visibility timeout (pure: no servers)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conveyor_common.celery_app import visibility_timeout
from job_service.config import Settings
from job_service.jobs.time_limits import TimeLimits


def test_the_bound_is_the_longest_limit_the_visibility_timeout_was_derived_from() -> None:
    limits = TimeLimits.derive(max_timeout_seconds=600, grace_seconds=30)
    assert limits.max_timeout_seconds == 600
    assert limits.visibility_timeout_seconds == visibility_timeout(600)
    assert (limits.soft(100), limits.hard(100)) == (100, 130)
    assert limits.requested_grace_seconds is None
    # The hard limit of the longest job ends before kombu would redeliver its message.
    assert limits.hard(600) < limits.visibility_timeout_seconds
    assert limits.marker_ttl_seconds == 2 * limits.visibility_timeout_seconds


def test_a_grace_reaching_past_the_visibility_timeout_is_shortened_to_fit() -> None:
    limits = TimeLimits.derive(
        max_timeout_seconds=5, grace_seconds=30, visibility_timeout_seconds=8
    )
    assert (limits.grace_seconds, limits.requested_grace_seconds) == (2, 30)
    assert limits.hard(5) == 7 < 8
    with pytest.raises(ValueError, match="shorter than the longest"):
        TimeLimits.derive(max_timeout_seconds=10, grace_seconds=0, visibility_timeout_seconds=8)


def test_settings_derive_the_limits_from_the_visibility_timeout_the_workers_use() -> None:
    settings = Settings(environment="test", internal_token="x" * 32, max_timeout_seconds=120)
    assert settings.time_limits.max_timeout_seconds == 120
    assert settings.time_limits.visibility_timeout_seconds == visibility_timeout(120)
    # The fault tests shrink the visibility timeout to seconds: the grace shrinks to fit.
    short = Settings(
        environment="test",
        internal_token="x" * 32,
        max_timeout_seconds=5,
        visibility_margin_seconds=3,
    )
    assert short.time_limits.visibility_timeout_seconds == 8
    assert short.time_limits.hard(5) < 8


def test_settings_refuse_a_socket_timeout_shorter_than_a_blocking_read() -> None:
    with pytest.raises(ValidationError, match="EVENTS_BLOCK_MS"):
        Settings(
            environment="test",
            internal_token="x" * 32,
            redis_socket_timeout=1,
            events_block_ms=1000,
        )
