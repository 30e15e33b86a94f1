"""`BENCH_CONVEYOR_*` variables reach the stack under their `CONVEYOR_*` names; nothing else of
the bench's environment does."""

from __future__ import annotations

from conveyor_bench.conveyor import settings_from_environment


def test_prefixed_variables_become_the_stacks_settings() -> None:
    environ = {
        "BENCH_CONVEYOR_EVENTS_LINGER_MS": "20",
        "CONVEYOR_LOG_LEVEL": "DEBUG",  # the developer's own: not passed
        "BENCH_DATABASE_URL": "postgresql://bench",  # the bench's, not the stack's
        "BENCH_CONVEYOR_": "nameless",
    }
    assert settings_from_environment(environ) == {"CONVEYOR_EVENTS_LINGER_MS": "20"}
