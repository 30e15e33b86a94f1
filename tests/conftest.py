"""Root suite: end-to-end tests that drive the whole stack (every service and real workers as
processes) over HTTP. Fixtures come from the `conveyor_testing` pytest plugin.

`module_stack` is one stack per test module: starting every service and a worker costs seconds,
and the tests in a module don't disturb each other (each uses its own tenant or jobs). A module
that needs other settings overrides `stack_options` (module scope) with `StackConfig` fields,
e.g. `{"extra_env": {"CONVEYOR_RATE_LIMIT": "5/second"}}`. Fault tests that stop or kill
processes use the function-scoped `stack_factory` instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor_devstack.stack import Stack
from conveyor_testing.stacks import running_stack


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
def module_stack(
    postgres_backend: Any,
    redis_backend: Any,
    tmp_path_factory: pytest.TempPathFactory,
    stack_options: dict[str, Any],
) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("stack-logs")
    with running_stack(postgres_backend.url, redis_backend.url, log_dir, **stack_options) as stack:
        yield stack
