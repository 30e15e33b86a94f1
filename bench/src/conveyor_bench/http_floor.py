"""The HTTP floor: what this machine's Python HTTP stack carries before Conveyor does any work.

A FastAPI app whose `POST /v1/jobs` only answers 202 with a job-shaped body, served by uvicorn
as the services are, and driven by the bench's own load generator (the same client, clients and
duration as the single-submit scenario). A single submit crosses two such servers (gateway and
job-service) and one more client (the gateway's), so its rate cannot pass this one's; the
table prints single submits beside it so the platform's share is visible apart from the stack's.

`python -m conveyor_bench.http_floor PORT` serves the app (run as a process of its own, like
the services, so the load generator does not share its event loop)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import httpx  # the start-up probe only; the load comes from loadgen

from conveyor_bench.loadgen import closed_loop, make_client
from conveyor_bench.stats import latency_summary, rate
from conveyor_devstack.ports import free_port


def _app() -> Any:
    from fastapi import FastAPI, status

    app = FastAPI()

    @app.post("/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
    async def submit(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "status": "PENDING", "task": body.get("task")}

    return app


def serve(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        _app(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
        proxy_headers=False,
    )  # fmt: skip
    uvicorn.Server(config).run()


class FloorServer:
    """The floor app in its own process, on a free port, while the `with` block runs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FloorServer:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "conveyor_bench.http_floor", str(self.port)],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{self.url}/v1/jobs", json={"task": "echo"}, timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the HTTP floor server did not start within 30 s")

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


async def measure(url: str, *, clients: int, seconds: float) -> dict[str, Any]:
    client = make_client(url, "unused", connections=clients + 8)
    try:
        outcome = await closed_loop(client, clients=clients, seconds=seconds)
    finally:
        await client.aclose()
    return {
        "clients": clients,
        "requests": outcome.jobs,
        "per_second": rate(outcome.jobs, outcome.seconds),
        "latency": latency_summary(outcome.latencies),
    }


if __name__ == "__main__":
    serve(int(sys.argv[1]))
