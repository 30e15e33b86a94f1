"""The rate the steady re-run and the soak use when the target rate was not carried."""

from __future__ import annotations

from conveyor_bench.runner import kept_up, sustainable_rate

KEPT_UP = {"stopped_overloaded_at": None, "submit_to_started": {"p99_ms": 40.0}}
BACKLOGGED = {"stopped_overloaded_at": None, "submit_to_started": {"p99_ms": 427.0}}
STOPPED = {"stopped_overloaded_at": 12.5, "submit_to_started": {"p99_ms": 300.0}}


def test_the_target_when_the_steady_run_kept_up() -> None:
    single = {"accepted_per_second": 150.0, "drained_per_second": 100.0}
    assert sustainable_rate(200.0, single, KEPT_UP) == 200.0


def test_a_backlog_falls_back_to_what_single_submits_carried_end_to_end() -> None:
    # Accepted at 400/s but drained at 180/s: the worker, not the API, sets the rate.
    single = {"accepted_per_second": 400.0, "drained_per_second": 180.0}
    assert sustainable_rate(200.0, single, BACKLOGGED) == 108.0
    assert sustainable_rate(200.0, single, STOPPED) == 108.0


def test_the_accepted_rate_bounds_it_when_the_drain_was_faster() -> None:
    single = {"accepted_per_second": 150.0, "drained_per_second": 149.0}
    assert sustainable_rate(200.0, single, STOPPED) == 89.0
    assert sustainable_rate(200.0, {"accepted_per_second": 150.0}, STOPPED) == 90.0


def test_never_above_the_target_nor_below_five() -> None:
    assert sustainable_rate(200.0, {"accepted_per_second": 900.0}, STOPPED) == 200.0
    assert sustainable_rate(200.0, {"accepted_per_second": 2.0}, STOPPED) == 5.0


def test_kept_up_needs_every_send_made_and_a_p99_short_of_a_queue() -> None:
    assert kept_up(KEPT_UP)
    assert not kept_up(BACKLOGGED)
    assert not kept_up(STOPPED)
    assert not kept_up({"stopped_overloaded_at": None, "submit_to_started": {"p99_ms": 250.0}})
    assert kept_up({"stopped_overloaded_at": None, "submit_to_started": {"p99_ms": 249.0}})
