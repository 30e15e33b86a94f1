"""The end of the shutdown grace, without a worker: what gets killed, what runs, how it exits."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from conveyor_worker.shutdown import HARD_EXIT_CODE, ShutdownGrace, pool_processes


def test_expiry_kills_the_pool_runs_the_hooks_and_exits_hard():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    exits: list[int] = []
    hooks: list[str] = []

    def failing_hook() -> None:
        raise RuntimeError("redis is gone")

    grace = ShutdownGrace(
        60,
        children=lambda: [child.pid],
        exit_hooks=[failing_hook, lambda: hooks.append("ran")],
        exit_process=exits.append,
    )
    grace.expire()
    assert child.wait(10) == -9
    assert hooks == ["ran"]  # a failing hook does not stop the next one
    assert exits == [HARD_EXIT_CODE]


def test_the_timer_starts_once_and_can_be_cancelled():
    exits: list[int] = []
    grace = ShutdownGrace(3600, children=list, exit_process=exits.append)
    grace.begin()
    first = grace._timer
    grace.begin()  # SIGTERM twice, or SIGTERM then SIGQUIT
    assert grace._timer is first
    grace.cancel()
    assert first is not None
    first.join(5)
    assert exits == []


def test_pool_processes_come_from_the_pool_but_never_this_process():
    prefork = SimpleNamespace(pool=SimpleNamespace(info={"processes": [101, 102]}))
    assert pool_processes(prefork) == [101, 102]
    # The solo pool names the main process itself; it must not kill itself before it exits.
    solo = SimpleNamespace(pool=SimpleNamespace(info={"processes": [os.getpid()]}))
    assert pool_processes(solo) == []
    assert pool_processes(SimpleNamespace(pool=SimpleNamespace(info={}))) == []
    assert pool_processes(None) == []
