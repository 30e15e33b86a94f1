"""Tasks every worker has: `echo`, `sleep`, `fail` and `http.request`."""

from __future__ import annotations

from typing import Any

from conveyor_worker.builtin.basic import echo, fail, sleep
from conveyor_worker.builtin.http_request import HttpPolicy, HttpRequestInput, perform_request
from conveyor_worker.registry import TaskRegistry, make_task


def build_registry(http_policy: HttpPolicy | None = None) -> TaskRegistry:
    """The built-in tasks; `http.request` closes over the worker's HTTP policy."""
    policy = http_policy or HttpPolicy()

    def http_request(args: HttpRequestInput) -> dict[str, Any]:
        """Makes one HTTP request and returns status, headers and body (capped in size, with a
        `truncated` flag). Loopback, private, link-local and metadata addresses are refused,
        on every redirect hop."""
        return perform_request(args, policy)

    registry = TaskRegistry()
    registry.add(make_task(echo, name="echo", timeout_seconds=60))
    registry.add(make_task(sleep, name="sleep", timeout_seconds=600))
    registry.add(make_task(fail, name="fail", timeout_seconds=60))
    registry.add(make_task(http_request, name="http.request", timeout_seconds=330))
    return registry


__all__ = ["HttpPolicy", "build_registry"]
