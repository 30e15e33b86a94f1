"""The worker's small HTTP server: `/healthz` (the process answers), `/readyz` (Redis answers and
the consumer is consuming) and `/metrics` (Prometheus, aggregated across prefork children).

A thread of the worker's main process, so it shares the consumer's state; stdlib only, since it
serves a probe every few seconds and nothing else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from conveyor_common.metrics import metrics_payload

log = structlog.get_logger("conveyor.worker")

ReadinessCheck = Callable[[], Mapping[str, str]]


def _handler(readiness: ReadinessCheck) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        server_version = "conveyor-worker"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                try:
                    checks = dict(readiness())
                except Exception as exc:  # a broken check means not ready, never a crash
                    checks = {"readiness": f"unavailable: {type(exc).__name__}"}
                ready = all(value == "ok" for value in checks.values())
                body = {"status": "ready" if ready else "not-ready", "checks": checks}
                self._json(200 if ready else 503, body)
            elif path == "/metrics":
                self._send(200, metrics_payload(), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"status": "not-found"})

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the log

    return HealthHandler


class HealthServer:
    def __init__(self, host: str, port: int, readiness: ReadinessCheck) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(readiness))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="conveyor-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("worker.health_listening", port=self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
