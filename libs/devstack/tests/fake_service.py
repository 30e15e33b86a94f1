"""A stand-in for a Conveyor process, for testing the supervision without the real services.

`fake_service.py NAME` serves `/readyz` (200) and `/internal/v1/auth/verify` on
`CONVEYOR_WORKER_HEALTH_PORT` or `CONVEYOR_PORT`, starts one grandchild that sleeps, and writes
`<pid> <grandchild pid>` to `$FAKE_PID_DIR/NAME.pids`. On SIGTERM it exits without stopping the
grandchild (so only the supervisor's sweep of the process group can), unless `NAME` is listed in
`FAKE_IGNORE_TERM`, in which case it ignores SIGTERM altogether. Names listed in
`FAKE_NEVER_READY` answer `/readyz` with 503.

`fake_service.py migrate` exits 0; `fake_service.py create-api-key --tenant T --name N` prints
a new key `cvk_fake_T_<random>`, and `/internal/v1/auth/verify` accepts any `cvk_fake_dev_...`.
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        never_ready = NAME in os.environ.get("FAKE_NEVER_READY", "").split(",")
        if self.path == "/readyz" and never_ready:
            self._answer(503, {"status": "not ready"})
        elif self.path in ("/readyz", "/healthz"):
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        key = str(body.get("key", ""))
        if self.path == "/internal/v1/auth/verify" and key.startswith("cvk_fake_dev_"):
            self._answer(200, {"tenant_id": "dev", "scopes": [], "key_id": "k"})
        else:
            self._answer(401, {})

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"request {format % args}\n")


NAME = ""


def serve(name: str) -> None:
    global NAME
    NAME = name
    if name in os.environ.get("FAKE_IGNORE_TERM", "").split(","):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    port = int(os.environ.get("CONVEYOR_WORKER_HEALTH_PORT") or os.environ["CONVEYOR_PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    pid_file = Path(os.environ["FAKE_PID_DIR"]) / f"{name}.pids"
    pid_file.write_text(f"{os.getpid()} {grandchild.pid}\n")
    sys.stdout.write(f"{name} listening on {port}\n")
    sys.stdout.flush()
    server.serve_forever()


def main() -> None:
    command = sys.argv[1]
    if command == "migrate":
        sys.stderr.write("migrated\n")
    elif command == "create-api-key":
        tenant = sys.argv[sys.argv.index("--tenant") + 1]
        sys.stdout.write(f"cvk_fake_{tenant}_{uuid.uuid4().hex[:8]}\n")
    else:
        serve(command)


if __name__ == "__main__":
    main()
