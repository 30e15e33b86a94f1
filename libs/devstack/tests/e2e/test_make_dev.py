"""`python -m conveyor_devstack.dev` with the real services, the way `make dev` runs it on a
fresh clone: SQLite under `.conveyor/`, its own Redis, one worker. A client reads
`.conveyor/dev.env`, runs an `echo` job through the public API, and a Ctrl-C leaves no process
behind."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conveyor_devstack.dev_env import read_dev_env
from conveyor_devstack.ports import free_port

pytestmark = pytest.mark.e2e


def descendants(root: int) -> set[int]:
    """Every running process below `root` (children in other sessions included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] not in ("Z", "X"):
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def test_make_dev_runs_a_job_and_ctrl_c_stops_everything(tmp_path, fakes):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_GATEWAY_PORT"] = str(port)
    log_path = tmp_path / "make-dev.log"
    with log_path.open("ab") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "conveyor_devstack.dev"], cwd=tmp_path, env=env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, so the Ctrl-C below is a terminal's
        )  # fmt: skip

    def output() -> str:
        return log_path.read_text(errors="replace")

    env_file = tmp_path / ".conveyor" / "dev.env"
    processes: set[int] = set()
    try:
        deadline = time.monotonic() + 100
        while not env_file.exists():
            assert runner.poll() is None, output()
            assert time.monotonic() < deadline, output()
            time.sleep(0.2)
        settings = read_dev_env(env_file)
        assert settings["CONVEYOR_GATEWAY_URL"] == f"http://127.0.0.1:{port}"
        assert settings["CONVEYOR_API_KEY"].startswith("cvk_")
        assert (tmp_path / ".conveyor" / "conveyor.db").exists()
        assert f"http://127.0.0.1:{port}/docs" in output()
        processes = descendants(runner.pid)
        # job-service, result-service, gateway, a worker with its pool, and Redis
        assert len(processes) >= 5, output()

        with httpx.Client(
            base_url=settings["CONVEYOR_GATEWAY_URL"],
            headers={"Authorization": f"Bearer {settings['CONVEYOR_API_KEY']}"},
            timeout=10,
        ) as client:
            assert client.get("/docs").status_code == 200
            submitted = client.post("/v1/jobs", json={"task": "echo", "args": {"hello": "dev"}})
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            deadline = time.monotonic() + 60
            while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] != "SUCCEEDED":
                assert job["status"] not in ("FAILED", "CANCELLED"), job
                assert time.monotonic() < deadline, (job, output())
                time.sleep(0.2)
            result = client.get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200, result.text
            assert result.json()["result"] == {"hello": "dev"}

        # The README's tour, word for word, as a newcomer pastes it into a second terminal.
        tour = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_tour()], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert tour.returncode == 0, tour.stderr
        lines = [line for line in tour.stdout.splitlines() if line.strip()]
        submitted, status, result, catalog = (json.loads(line) for line in lines[-4:])
        assert submitted["status"] in ("PENDING", "QUEUED", "RUNNING", "SUCCEEDED")
        assert status["status"] == "SUCCEEDED", status  # within the tour's one-second pause
        assert result == {"job_id": submitted["id"], "result": {"hello": "world"}}
        assert "echo" in {task["name"] for task in catalog["tasks"]}

        os.killpg(runner.pid, signal.SIGINT)
        assert runner.wait(60) == 0, output()
        assert fakes.wait_gone(sorted(processes)) == [], output()
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(10)
        for pid in processes | {int(p) for p in re.findall(r"\bpid=(\d+)", _redis_log(tmp_path))}:
            if not fakes.pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


def readme_tour() -> str:
    """The first shell block of the README's tour section."""
    readme = (Path(__file__).resolve().parents[4] / "README.md").read_text()
    section = readme.split("## A 60-second tour", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _redis_log(cwd: Path) -> str:
    try:
        return (cwd / ".conveyor" / "redis" / "redis.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""
