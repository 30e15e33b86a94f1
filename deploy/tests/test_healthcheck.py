"""deploy/docker/healthcheck.py, the images' HEALTHCHECK, against a real local HTTP server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest
from deploy_support import DEPLOY, load_module

SCRIPT = DEPLOY / "docker" / "healthcheck.py"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def healthcheck() -> ModuleType:
    return load_module(SCRIPT, "conveyor_healthcheck")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthy_service_passes(
    healthcheck: ModuleType, server_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", str(server_port))
    assert healthcheck.main(["/healthz"]) == 0


def test_unhealthy_answer_fails(
    healthcheck: ModuleType, server_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", str(server_port))
    assert healthcheck.main(["/readyz"]) == 1
    assert healthcheck.main(["/missing"]) == 1


def test_nothing_listening_fails(healthcheck: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", str(free_port()))
    assert healthcheck.main(["/healthz"]) == 1


def test_port_comes_from_the_named_variable(
    healthcheck: ModuleType, server_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", str(free_port()))
    monkeypatch.setenv("CONVEYOR_WORKER_HEALTH_PORT", str(server_port))
    assert healthcheck.main(["--port-env", "CONVEYOR_WORKER_HEALTH_PORT", "/healthz"]) == 0
    monkeypatch.setenv("CONVEYOR_WORKER_HEALTH_PORT", "not-a-port")
    assert healthcheck.main(["--port-env", "CONVEYOR_WORKER_HEALTH_PORT", "/healthz"]) == 1


def test_runs_as_docker_runs_it(server_port: int) -> None:
    """Exactly the HEALTHCHECK's command line, in a fresh interpreter with only the stdlib."""
    ok = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--port-env", "CONVEYOR_PORT", "/healthz"],
        env={"CONVEYOR_PORT": str(server_port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "/readyz"],
        env={"CONVEYOR_PORT": str(server_port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 1
    assert "readyz" in bad.stderr
