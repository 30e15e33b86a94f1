"""Real worker processes (`python -m conveyor_worker`) against the test Redis, fed with messages
exactly as job-service's relay writes them (LPUSH of `build_task_message`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.messages import build_task_message, queue_key
from conveyor_common.redis_keys import RedisKeys
from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module

TASK_MODULES_DIR = Path(__file__).parent / "task_modules"
FINAL = {EventType.SUCCEEDED, EventType.FAILED}


@dataclass
class WorkerUnderTest:
    process: ManagedProcess
    client: redis.Redis
    keys: RedisKeys
    health_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def wait_ready(self) -> None:
        try:
            self.process.wait_http_ok(f"{self.url}/readyz", timeout=90)
        except Exception:
            self.process.kill()
            raise

    def submit(
        self,
        task: str,
        args: dict[str, Any] | None = None,
        *,
        queue: str = "default",
        tenant: str = "acme",
        attempt: int = 1,
        soft_time_limit: float | None = None,
        time_limit: float | None = 60,
        idempotency_key: str | None = None,
    ) -> uuid.UUID:
        envelope = TaskEnvelope(
            job_id=uuid.uuid4(),
            tenant_id=tenant,
            task=task,
            attempt=attempt,
            args=args or {},
            queue=queue,
            timeout_seconds=int(time_limit or 60),
            idempotency_key=idempotency_key,
        )
        self.publish(envelope, soft_time_limit=soft_time_limit, time_limit=time_limit)
        return envelope.job_id

    def publish(
        self,
        envelope: TaskEnvelope,
        *,
        copies: int = 1,
        soft_time_limit: float | None = None,
        time_limit: float | None = 60,
    ) -> None:
        """LPUSHes `copies` identical messages for `envelope`, in one round trip."""
        message = build_task_message(
            envelope, soft_time_limit=soft_time_limit, time_limit=time_limit
        )
        self.client.lpush(self.keys.queue(queue_key(envelope.queue)), *([message] * copies))

    def info(self) -> dict[str, Any]:
        """This worker's live-worker record (its Celery node name, pid, ...)."""
        for key in self.client.scan_iter(match=self.keys.worker("*")):
            raw = self.client.get(key)
            if raw is not None:
                info: dict[str, Any] = json.loads(raw)
                if info["pid"] == self.process.pid:
                    return info
        raise AssertionError(f"worker {self.process.pid} is not registered")

    def events(self, job_id: uuid.UUID) -> list[LifecycleEvent]:
        found = []
        for _id, fields in self.client.xrange(self.keys.events_stream):
            event = LifecycleEvent.from_stream_fields(fields)
            if event.job_id == job_id:
                found.append(event)
        return found

    def wait_events(
        self, job_id: uuid.UUID, until: set[EventType] = FINAL, timeout: float = 30
    ) -> list[LifecycleEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(job_id)
            if any(e.type in until for e in events):
                return events
            time.sleep(0.05)
        raise AssertionError(
            f"no {sorted(until)} event for {job_id} in {timeout}s; got {self.events(job_id)}\n"
            f"--- worker log ---\n{self.process.tail(60)}"
        )

    def final_event(self, job_id: uuid.UUID, timeout: float = 30) -> LifecycleEvent:
        return next(e for e in self.wait_events(job_id, timeout=timeout) if e.type in FINAL)

    def result(self, job_id: uuid.UUID, timeout: float = 10) -> dict[str, Any]:
        """The record in Celery's result backend, read as the result-service does: a GET."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self.client.get(self.keys.result(str(job_id)))
            if raw is not None:
                record: dict[str, Any] = json.loads(raw)
                return record
            time.sleep(0.05)
        raise AssertionError(f"no result stored for {job_id}\n{self.process.tail(40)}")


WorkerFactory = Callable[..., WorkerUnderTest]


def _start_worker(
    redis_url: str,
    namespace: str,
    log_dir: Path,
    *,
    name: str = "worker",
    pool: str = "prefork",
    concurrency: int = 2,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> WorkerUnderTest:
    """Starts `python -m conveyor_worker`; `wait=False` returns at once (start several, then
    `wait_ready()` each: the start-ups overlap)."""
    port = free_port()
    pythonpath = os.pathsep.join(
        filter(None, [str(TASK_MODULES_DIR), os.environ.get("PYTHONPATH")])
    )
    child_env = {
        "CONVEYOR_REDIS_URL": redis_url,
        "CONVEYOR_REDIS_NAMESPACE": namespace,
        "CONVEYOR_ENVIRONMENT": "development",
        "CONVEYOR_HOST": "127.0.0.1",
        "CONVEYOR_WORKER_HEALTH_PORT": str(port),
        "CONVEYOR_WORKER_CONCURRENCY": str(concurrency),
        "CONVEYOR_WORKER_POOL": pool,
        "CONVEYOR_WORKER_QUEUES": "",
        "CONVEYOR_TASK_MODULES": "",
        "CONVEYOR_HTTP_ALLOWED_HOSTS": "",
        "CONVEYOR_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": pythonpath,
        **(env or {}),
    }
    process = ManagedProcess(
        name, python_module("conveyor_worker"), env=child_env, log_dir=log_dir
    ).start()
    worker = WorkerUnderTest(process, redis.Redis.from_url(redis_url), RedisKeys(namespace), port)
    if wait:
        worker.wait_ready()
    return worker


def _stop_all(workers: list[WorkerUnderTest]) -> None:
    """SIGTERM to every main process first, then wait: the warm shutdowns overlap."""
    for worker in workers:
        if worker.process.process is not None and worker.process.alive():
            worker.process.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            if worker.process.process is not None:
                worker.process.process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            worker.process.kill()
            worker.client.close()


def _delete_namespace(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@pytest.fixture(scope="module")
def module_namespace(redis_backend: Any) -> Iterator[str]:
    """One namespace for the module's shared worker (the per-test `redis_namespace` cannot
    outlive a test)."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    yield namespace
    _delete_namespace(redis_backend.url, namespace)


@pytest.fixture(scope="module")
def module_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def module_worker_factory(
    redis_backend: Any, module_namespace: str, module_log_dir: Path
) -> Iterator[WorkerFactory]:
    started: list[WorkerUnderTest] = []

    def make(**kwargs: Any) -> WorkerUnderTest:
        kwargs.setdefault("name", f"worker{len(started) + 1}")
        worker = _start_worker(redis_backend.url, module_namespace, module_log_dir, **kwargs)
        started.append(worker)
        return worker

    yield make
    _stop_all(started)


@pytest.fixture
def worker_factory(
    redis_backend: Any, redis_namespace: str, process_log_dir: Path
) -> Iterator[WorkerFactory]:
    """Workers of the test's own (in the test's namespace, on the session's Redis unless
    `redis_url=` names another), stopped after it."""
    started: list[WorkerUnderTest] = []

    def make(*, redis_url: str | None = None, **kwargs: Any) -> WorkerUnderTest:
        kwargs.setdefault("name", f"worker{len(started) + 1}")
        url = redis_url or redis_backend.url
        worker = _start_worker(url, redis_namespace, process_log_dir, **kwargs)
        started.append(worker)
        return worker

    yield make
    _stop_all(started)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/ok": (200, {"Content-Type": "text/plain; charset=utf-8"}, b"hello"),
            "/big": (200, {"Content-Type": "text/plain"}, b"x" * 5_000),
            "/redirect-ok": (302, {"Location": "/ok"}, b""),
            "/redirect-loopback": (302, {"Location": f"http://localhost:{port}/ok"}, b""),
            "/redirect-metadata": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
            "/redirect-file": (302, {"Location": "file:///etc/passwd"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = json.dumps(
            {"method": "POST", "body": body.decode(), "x-team": self.headers.get("X-Team")}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class LocalHttpServer:
    port: int
    hits: list[str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def http_server() -> Iterator[LocalHttpServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LocalHttpServer(server.server_address[1], server.hits)  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@dataclass
class Notes:
    """The file the fault tasks (task_modules/fault_tasks.py) note their starts and ends in."""

    path: Path

    def lines(self, job_id: uuid.UUID | None = None) -> list[list[str]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        rows = [line.split() for line in text.splitlines() if line.strip()]
        return [row for row in rows if job_id is None or row[1] == str(job_id)]

    def starts(self, job_id: uuid.UUID | None = None) -> list[list[str]]:
        return [row for row in self.lines(job_id) if row[0] == "start"]

    def ends(self, job_id: uuid.UUID | None = None) -> list[list[str]]:
        return [row for row in self.lines(job_id) if row[0] == "end"]


@pytest.fixture
def notes(tmp_path: Path) -> Notes:
    return Notes(tmp_path / "notes.txt")


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def eventually() -> Callable[[Callable[[], object], float, str], None]:
    """`eventually(condition, timeout, what)`: polls until `condition()` is true."""
    return wait_until
