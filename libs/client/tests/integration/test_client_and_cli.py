"""The sync client and the `conveyor` CLI against the stand-in API on a real server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from conveyor_client import Client, ConveyorAPIError, ConveyorConnectionError
from conveyor_client.cli import main
from conveyor_testing.ports import free_port


@pytest.fixture
def client(served_api: str, api: Any, api_key: str) -> Any:
    with Client(served_api, api_key, timeout=5) as client:
        yield client


def run_cli(*argv: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def test_sync_round_trip(client: Client) -> None:
    job = client.submit("echo", {"v": 1}, tags=["a"])
    assert client.get(job["id"])["id"] == job["id"]
    assert client.wait(job["id"], timeout=10, poll_interval=0.01)["status"] == "SUCCEEDED"
    assert client.result(job["id"]) == {"echo": {"v": 1}}
    assert [j["id"] for j in client.list(page_size=1)] == [job["id"]]
    assert client.tasks()["tasks"][0]["name"] == "echo"


def test_sync_errors(client: Client) -> None:
    with pytest.raises(ConveyorAPIError) as info:
        client.get("00000000-0000-0000-0000-000000000000")
    assert info.value.slug == "job-not-found"

    with pytest.raises(ConveyorAPIError) as crash:
        client.submit("crash")
    assert crash.value.status == 500
    assert crash.value.type == "about:blank"


def test_nothing_listening_is_a_connection_error(api_key: str) -> None:
    with Client(f"http://127.0.0.1:{free_port()}", api_key, timeout=2) as client:
        with pytest.raises(ConveyorConnectionError):
            client.tasks()


@pytest.fixture
def cli_env(served_api: str, api: Any, api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_GATEWAY_URL", served_api)
    monkeypatch.setenv("CONVEYOR_API_KEY", api_key)


@pytest.mark.usefixtures("cli_env")
def test_cli_submit_get_result(api: Any) -> None:
    code, job, _ = run_cli("submit", "echo", "--args", '{"n": 3}', "--queue", "q1", "--tag", "t")
    assert code == 0
    assert (job["task"], job["queue"], job["tags"]) == ("echo", "q1", ["t"])

    code, shown, _ = run_cli("get", job["id"])
    assert (code, shown["id"]) == (0, job["id"])

    code, unfinished, err = run_cli("result", job["id"])
    assert code == 1
    assert unfinished is None
    assert json.loads(err)["type"] == "urn:conveyor:problem:job-not-finished"


@pytest.mark.usefixtures("cli_env")
def test_cli_submit_and_wait() -> None:
    code, answer, _ = run_cli("submit", "echo", "--args", '{"n": 4}', "--wait",
                              "--poll-interval", "0.01")  # fmt: skip
    assert code == 0
    assert answer["job"]["status"] == "SUCCEEDED"
    assert answer["result"] == {"echo": {"n": 4}}

    code, failed, _ = run_cli("submit", "fail", "--wait", "--poll-interval", "0.01")
    assert code == 1
    assert failed["job"]["error"] == {"type": "ValueError", "message": "boom"}


@pytest.mark.usefixtures("cli_env")
def test_cli_list_and_tasks() -> None:
    for i in range(3):
        run_cli("submit", "echo", "--args", json.dumps({"i": i}))
    code, jobs, _ = run_cli("list", "--limit", "2")
    assert code == 0
    assert len(jobs) == 2
    code, catalog, _ = run_cli("tasks")
    assert code == 0
    assert catalog["tasks"][0]["name"] == "echo"


@pytest.mark.usefixtures("cli_env")
def test_cli_rejects_args_that_are_not_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["submit", "echo", "--args", "[1, 2]"])
    assert info.value.code == 2
    assert "JSON object" in capsys.readouterr().err


def test_cli_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_API_KEY", raising=False)
    code, _, err = run_cli("tasks")
    assert code == 1
    assert "CONVEYOR_API_KEY" in json.loads(err)["detail"]


def test_console_script_is_installed(served_api: str, api: Any, api_key: str) -> None:
    env = {"CONVEYOR_GATEWAY_URL": served_api, "CONVEYOR_API_KEY": api_key, "PATH": ""}
    script = __import__("shutil").which(
        "conveyor", path=str(__import__("pathlib").Path(sys.executable).parent)
    )
    assert script is not None
    completed = subprocess.run([script, "tasks"], env=env, capture_output=True, text=True,
                               timeout=60, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["tasks"][0]["name"] == "echo"
