"""What the rate-limit headers say when a tenant has several limits."""

from __future__ import annotations

import limits

from api_gateway.ratelimit import Quota, Verdict

NOW = 1_000_000.0
PER_SECOND = limits.parse("10/second")
PER_HOUR = limits.parse("100/hour")


def headers(verdict: Verdict) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in verdict.headers()}


def test_allowed_reports_the_limit_closest_to_running_out() -> None:
    verdict = Verdict(
        True,
        (Quota(PER_SECOND, True, 7, NOW + 0.4), Quota(PER_HOUR, True, 3, NOW + 1800.2)),
        NOW,
    )
    assert headers(verdict) == {
        "ratelimit-limit": "100",
        "ratelimit-remaining": "3",
        "ratelimit-reset": "1801",
        "ratelimit-policy": "10;w=1, 100;w=3600",
    }


def test_refused_reports_the_longest_wait() -> None:
    verdict = Verdict(
        False,
        (Quota(PER_SECOND, False, 0, NOW + 0.2), Quota(PER_HOUR, False, 0, NOW + 90.5)),
        NOW,
    )
    assert verdict.retry_after == 91
    assert headers(verdict)["ratelimit-limit"] == "100"
    assert headers(verdict)["ratelimit-reset"] == "91"


def test_retry_after_is_at_least_one_second() -> None:
    verdict = Verdict(False, (Quota(PER_SECOND, False, 0, NOW + 0.01),), NOW)
    assert verdict.retry_after == 1
    assert headers(verdict)["ratelimit-remaining"] == "0"
