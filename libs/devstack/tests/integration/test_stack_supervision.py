"""Stack supervision with stand-in processes (tests/fake_service.py): readiness, stop, kill -9,
restart of one process, and nothing left behind."""

import os
import signal

import pytest

from conveyor_devstack.output import LogFiles
from conveyor_devstack.stack import Stack, StackConfig, StackError

ALL = ["job-service", "result-service", "api-gateway", "worker-1", "worker-2"]


@pytest.fixture
def make_stack(tmp_path, fakes):
    stacks = []

    def make(**kwargs) -> Stack:
        config = StackConfig.on_free_ports(
            database_url="sqlite+aiosqlite:////nowhere.db",
            redis_url="redis://127.0.0.1:1/0",
            workers=2,
            commands=fakes.commands(workers=2),
            job_service_cli=fakes.cli,
            extra_env=fakes.env | kwargs.pop("extra_env", {}),
            **kwargs,
        )
        stack = Stack(config, LogFiles(tmp_path / "logs"))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop(grace=2)


def _all_pids(fakes):
    return [pid for pids in fakes.pids().values() for pid in pids]


def test_start_waits_for_every_process_then_stop_leaves_nothing(make_stack, fakes, tmp_path):
    stack = make_stack().start(timeout=30)
    pids = fakes.wait_pids(ALL)
    assert all(stack.process(name).alive() for name in ALL)
    assert (tmp_path / "logs" / "migrate.log").read_text() == "migrated\n"
    assert "listening" in stack.process("worker-2").tail()
    assert stack.create_api_key("acme", "ci").startswith("cvk_fake_acme_")
    everything = [pid for pair in pids.values() for pid in pair]

    stack.stop(grace=5)

    assert fakes.wait_gone(everything) == []
    assert stack.crashed() == []


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(make_stack, fakes):
    stack = make_stack(extra_env={"FAKE_IGNORE_TERM": "api-gateway"}).start(timeout=30)
    gateway, grandchild = fakes.wait_pids(ALL)["api-gateway"]
    assert stack.stop_process("api-gateway", grace=0.5) == -signal.SIGKILL
    assert fakes.wait_gone([gateway, grandchild]) == []


def test_restart_one_process(make_stack, fakes):
    stack = make_stack().start(timeout=30)
    old_pid, old_grandchild = fakes.wait_pids(ALL)["result-service"]
    (fakes.pid_dir / "result-service.pids").unlink()

    stack.restart_process("result-service", grace=5)

    new_pid, _ = fakes.wait_pids(["result-service"])["result-service"]
    assert new_pid != old_pid
    assert stack.process("result-service").pid == new_pid
    assert fakes.wait_gone([old_pid, old_grandchild]) == []
    assert stack.process("job-service").alive()  # the others were left alone


def test_kill_9_of_a_whole_group_and_start_again(make_stack, fakes):
    stack = make_stack().start(timeout=30)
    pid, grandchild = fakes.wait_pids(ALL)["worker-1"]

    stack.kill_process("worker-1")

    assert fakes.wait_gone([pid, grandchild]) == []
    assert stack.process("worker-1").returncode == -signal.SIGKILL
    assert stack.crashed() == []  # we asked for it
    stack.start_process("worker-1")
    assert stack.process("worker-1").alive()


def test_kill_9_of_the_main_process_orphans_its_children_until_the_next_start(make_stack, fakes):
    stack = make_stack().start(timeout=30)
    pid, grandchild = fakes.wait_pids(ALL)["worker-2"]

    stack.kill_process("worker-2", whole_group=False)

    assert fakes.wait_gone([pid]) == []
    assert fakes.wait_gone([grandchild], timeout=0.5) == [grandchild]  # the orphaned pool
    stack.start_process("worker-2")  # a new start sweeps what the old run left
    assert fakes.wait_gone([grandchild]) == []


def test_a_crash_is_reported_and_readiness_fails_fast(make_stack, fakes):
    stack = make_stack().start(timeout=30)
    pid, _ = fakes.wait_pids(ALL)["job-service"]
    assert stack.process("job-service").pid == pid
    os.kill(pid, signal.SIGKILL)  # from outside: nobody asked the stack
    stack.process("job-service").wait(10)
    assert [child.name for child in stack.crashed()] == ["job-service"]
    with pytest.raises(StackError, match="job-service exited"):
        stack.wait_ready(["job-service"], timeout=5)


def test_a_failing_migration_stops_the_start(make_stack, fakes, tmp_path):
    stack = make_stack()
    stack.config.job_service_cli = [*fakes.cli[:1], "-c", "import sys; sys.exit('no db')"]
    with pytest.raises(StackError, match="no db"):
        stack.start(timeout=30)
    assert all(not child.alive() for child in stack.processes.values())
    assert "job-service" not in fakes.pids()  # never started on an unmigrated database
    everything = [pid for pair in fakes.pids().values() for pid in pair]
    assert fakes.wait_gone(everything) == []
