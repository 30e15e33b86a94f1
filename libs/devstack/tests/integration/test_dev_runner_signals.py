"""`python -m conveyor_devstack.dev`'s supervision, with stand-in services: it starts Redis and
every process, writes `.conveyor/dev.env` once ready, and a Ctrl-C (SIGINT to its process
group, as a terminal sends it) or SIGTERM stops everything — children and grandchildren — and
exits 0. A crashed child stops everything with exit code 1."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conveyor_devstack.dev_env import read_dev_env
from conveyor_devstack.ports import free_port

ALL = ["job-service", "result-service", "api-gateway", "worker-1"]

DRIVER = """
import json, os, sys
from pathlib import Path
from conveyor_devstack.dev import run
from conveyor_devstack.output import Terminal
overrides = json.loads(sys.argv[1])
sys.exit(run(dict(os.environ), Path.cwd(), Terminal(), overrides=overrides))
"""


class DevRun:
    def __init__(self, cwd, fakes, extra_env=None):
        self.cwd = cwd
        self.fakes = fakes
        self.port = free_port()
        self.log = cwd / "dev-runner.log"
        overrides = {"commands": fakes.commands(workers=1), "job_service_cli": fakes.cli}
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(fakes.env, CONVEYOR_GATEWAY_PORT=str(self.port), **(extra_env or {}))
        with self.log.open("ab") as out:
            # Its own group, like a shell job: the Ctrl-C below reaches it the way a terminal's does.
            self.process = subprocess.Popen(
                [sys.executable, "-c", DRIVER, json.dumps(overrides)], cwd=cwd, env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    @property
    def env_file(self):
        return self.cwd / ".conveyor" / "dev.env"

    def wait_ready(self, timeout=60.0):
        """Until dev.env is there. Waiting for this run's children first means a dev.env seen
        is this run's, not one the previous run left (which the runner deletes at start)."""
        deadline = time.monotonic() + timeout
        while not (set(ALL) <= set(self.fakes.pids()) and self.env_file.exists()):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def redis_pid(self):
        """Pids of the Redis servers this run started (each logs `pid=N` when it starts)."""
        try:
            text = (self.cwd / ".conveyor" / "redis" / "redis.log").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [int(pid) for pid in re.findall(r"\bpid=(\d+)", text)]

    def output(self):
        return self.log.read_text(errors="replace")

    def interrupt(self, sig=signal.SIGINT):
        os.killpg(self.process.pid, sig)

    def wait(self, timeout=60.0):
        return self.process.wait(timeout)

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def dev_run(tmp_path, fakes):
    runs = []

    def start(**kwargs):
        run = DevRun(tmp_path, fakes, **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()
        for pid in run.redis_pid():
            if not fakes.pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_process_and_exits_0(dev_run, fakes, sig):
    run = dev_run()
    run.wait_ready()
    env = read_dev_env(run.env_file)
    assert list(env) == ["CONVEYOR_GATEWAY_URL", "CONVEYOR_API_KEY"]
    assert env["CONVEYOR_GATEWAY_URL"] == f"http://127.0.0.1:{run.port}"
    assert env["CONVEYOR_API_KEY"].startswith("cvk_fake_dev_")
    output = run.output()
    assert f"http://127.0.0.1:{run.port}/docs" in output
    assert env["CONVEYOR_API_KEY"] in output
    assert "[api-gateway]" in output  # each child's lines carry its name
    pids = fakes.wait_pids(ALL)
    redis = run.redis_pid()
    assert len(redis) == 1
    assert not fakes.pid_gone(redis[0])
    everything = [pid for pair in pids.values() for pid in pair] + redis
    assert fakes.wait_gone(everything, timeout=0.2) == everything  # all running

    run.interrupt(sig)

    assert run.wait() == 0, run.output()
    assert fakes.wait_gone(everything) == []
    assert "stopped." in run.output()


def test_dev_key_is_kept_for_the_next_run(dev_run, fakes, tmp_path):
    first = dev_run()
    first.wait_ready()
    key = read_dev_env(first.env_file)["CONVEYOR_API_KEY"]
    first.interrupt()
    assert first.wait() == 0
    for pids_file in fakes.pid_dir.iterdir():
        pids_file.unlink()

    second = dev_run()
    second.wait_ready()

    assert read_dev_env(second.env_file)["CONVEYOR_API_KEY"] == key
    second.interrupt()
    assert second.wait() == 0


def test_a_crashed_process_stops_everything_with_exit_code_1(dev_run, fakes):
    run = dev_run()
    run.wait_ready()
    pids = fakes.wait_pids(ALL)
    everything = [pid for pair in pids.values() for pid in pair] + run.redis_pid()

    os.kill(pids["result-service"][0], signal.SIGKILL)

    assert run.wait() == 1, run.output()
    assert "result-service exited" in run.output()
    assert fakes.wait_gone(everything) == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(dev_run, fakes):
    run = dev_run(extra_env={"FAKE_IGNORE_TERM": "worker-1", "CONVEYOR_DEVSTACK_STOP_GRACE": "1"})
    run.wait_ready()
    pids = fakes.wait_pids(ALL)
    everything = [pid for pair in pids.values() for pid in pair] + run.redis_pid()

    run.interrupt()

    assert run.wait() == 0, run.output()
    assert fakes.wait_gone(everything) == []


def test_ctrl_c_while_starting_stops_everything(dev_run, fakes):
    run = dev_run(extra_env={"FAKE_NEVER_READY": "worker-1"})
    pids = fakes.wait_pids(ALL)
    everything = [pid for pair in pids.values() for pid in pair] + run.redis_pid()

    run.interrupt()

    assert run.wait() == 0, run.output()
    assert fakes.wait_gone(everything) == []
    assert not run.env_file.exists()  # never ready, so never announced
