"""`python -m conveyor_devstack.dev` (what `make dev` runs): all of Conveyor in one terminal.

On a machine with no database or Redis installed: a SQLite file at `.conveyor/conveyor.db`
(unless `CONVEYOR_DATABASE_URL` is set), a Redis server of its own on a free port with its data
under `.conveyor/redis/` (unless `CONVEYOR_REDIS_URL` is set), the gateway on
`CONVEYOR_GATEWAY_PORT` (default 8000) and one worker. When everything answers `/readyz` it
prints the URLs and a dev API key for tenant `dev` (kept in `.conveyor/dev-api-key.json` and
reused while job-service accepts it), and writes them to `.conveyor/dev.env`. Ctrl-C or SIGTERM
stops every process it started and exits 0; a process that crashes stops everything, exit 1.

Other `CONVEYOR_*` variables reach every process (e.g. `CONVEYOR_LOG_LEVEL=DEBUG`,
`CONVEYOR_WORKER_POOL=solo`). `CONVEYOR_DEVSTACK_STOP_GRACE` (seconds, default 15) bounds how long
a process may take to stop before it is killed; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from conveyor_common.logging import configure_logging
from conveyor_common.settings import DEV_INTERNAL_TOKEN, INTERNAL_TOKEN_HEADER
from conveyor_devstack.dev_env import write_dev_env
from conveyor_devstack.output import Terminal
from conveyor_devstack.ports import free_ports, port_is_free
from conveyor_devstack.process import DEFAULT_GRACE_SECONDS
from conveyor_devstack.redis_server import RedisServer
from conveyor_devstack.signals import ShutdownRequested, shutdown_on_signals
from conveyor_devstack.stack import Stack, StackConfig, StackError

log = structlog.get_logger(__name__)

DEV_TENANT = "dev"
DEV_KEY_NAME = "make-dev"
DEFAULT_GATEWAY_PORT = 8000
HOST = "127.0.0.1"
POLL_SECONDS = 0.5


class DevConfigError(Exception):
    """A setting that stops `make dev` before anything starts; the message says what to set."""


@dataclass(frozen=True)
class DevPaths:
    root: Path

    @classmethod
    def under(cls, cwd: Path) -> DevPaths:
        return cls((cwd / ".conveyor").resolve())

    @property
    def database(self) -> Path:
        return self.root / "conveyor.db"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def api_key(self) -> Path:
        return self.root / "dev-api-key.json"

    @property
    def env_file(self) -> Path:
        return self.root / "dev.env"


def database_url(env: Mapping[str, str], paths: DevPaths) -> str:
    return env.get("CONVEYOR_DATABASE_URL") or f"sqlite+aiosqlite:///{paths.database}"


def gateway_port(env: Mapping[str, str]) -> int:
    raw = env.get("CONVEYOR_GATEWAY_PORT", "").strip()
    if not raw:
        port = DEFAULT_GATEWAY_PORT
    else:
        try:
            port = int(raw)
        except ValueError:
            raise DevConfigError(f"CONVEYOR_GATEWAY_PORT={raw!r} is not a port number") from None
        if not 0 < port < 65536:
            raise DevConfigError(f"CONVEYOR_GATEWAY_PORT={raw!r} is not a port number")
    if not port_is_free(port, HOST):
        raise DevConfigError(
            f"port {port} on {HOST} is already in use. Stop whatever listens there, or set "
            f"CONVEYOR_GATEWAY_PORT to a free port, e.g. `CONVEYOR_GATEWAY_PORT=8080 make dev`."
        )
    return port


def _fingerprint(url: str) -> str:
    # The key file records which database its key belongs to without storing a password.
    return hashlib.sha256(url.encode()).hexdigest()


def load_saved_key(paths: DevPaths, db_url: str) -> str | None:
    try:
        saved = json.loads(paths.api_key.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("database") != _fingerprint(db_url):
        return None
    key = saved.get("key")
    return key if isinstance(key, str) and key else None


def save_key(paths: DevPaths, db_url: str, key: str) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.api_key.with_suffix(".tmp")
    tmp.write_text(json.dumps({"database": _fingerprint(db_url), "key": key}) + "\n")
    tmp.chmod(0o600)
    tmp.replace(paths.api_key)


def key_is_valid(stack: Stack, key: str) -> bool:
    """Asks job-service whether the saved key still works (the database may be new)."""
    response = httpx.post(
        f"{stack.job_service_url}/internal/v1/auth/verify",
        json={"key": key},
        headers={INTERNAL_TOKEN_HEADER: stack.config.internal_token},
        timeout=10.0,
    )
    if response.status_code == 200:
        return bool(response.json().get("tenant_id") == DEV_TENANT)
    if response.status_code in (401, 403, 404):
        return False
    response.raise_for_status()
    return False


def dev_api_key(stack: Stack, paths: DevPaths) -> str:
    saved = load_saved_key(paths, stack.config.database_url)
    if saved is not None and key_is_valid(stack, saved):
        return saved
    key = stack.create_api_key(DEV_TENANT, DEV_KEY_NAME)
    save_key(paths, stack.config.database_url, key)
    return key


def _banner(terminal: Terminal, stack: Stack, key: str, paths: DevPaths, cwd: Path) -> None:
    try:
        env_file = paths.env_file.relative_to(cwd)
    except ValueError:
        env_file = paths.env_file
    terminal.note(
        "\n".join(
            [
                "Conveyor is running.",
                f"  API:      {stack.gateway_url}",
                f"  Docs:     {stack.gateway_url}/docs",
                f"  API key:  {key}   (tenant {DEV_TENANT})",
                f"  Settings: {env_file}   (`set -a; . {env_file}; set +a` in another shell)",
                "Ctrl-C stops everything.",
            ]
        )
    )


def stop_grace(env: Mapping[str, str]) -> float:
    raw = env.get("CONVEYOR_DEVSTACK_STOP_GRACE", "").strip()
    try:
        return float(raw) if raw else DEFAULT_GRACE_SECONDS
    except ValueError:
        raise DevConfigError(f"CONVEYOR_DEVSTACK_STOP_GRACE={raw!r} is not a number") from None


def run(
    env: Mapping[str, str],
    cwd: Path,
    terminal: Terminal,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> int:
    """Runs the dev stack until a signal (exit code 0) or a crash (1). `overrides` replaces
    `StackConfig` fields (tests use it to run stand-in commands)."""
    with shutdown_on_signals() as signals:
        redis_server: RedisServer | None = None
        stack: Stack | None = None
        grace = DEFAULT_GRACE_SECONDS
        try:
            paths = DevPaths.under(cwd)
            try:
                port = gateway_port(env)
                grace = stop_grace(env)
            except DevConfigError as exc:
                sys.stderr.write(f"make dev: {exc}\n")
                return 1
            paths.root.mkdir(parents=True, exist_ok=True)
            # A dev.env from an earlier run would tell a waiting tool the stack is up too soon.
            paths.env_file.unlink(missing_ok=True)
            # Internal ports are free ones: only the gateway's is the developer's business.
            internal_ports = [p for p in free_ports(4) if p != port][:3]
            redis_url = env.get("CONVEYOR_REDIS_URL")
            if not redis_url:
                redis_server = RedisServer(data_dir=paths.redis_dir)
                redis_server.start()
                redis_url = redis_server.url
                terminal.note(f"Redis started on {redis_url} (data in {paths.redis_dir})")
            stack = Stack(
                StackConfig(
                    database_url=database_url(env, paths),
                    redis_url=redis_url,
                    redis_namespace=env.get("CONVEYOR_REDIS_NAMESPACE") or "conveyor",
                    host=HOST,
                    gateway_port=port,
                    job_service_port=internal_ports[0],
                    result_service_port=internal_ports[1],
                    worker_health_ports=internal_ports[2:],
                    workers=1,
                    internal_token=env.get("CONVEYOR_INTERNAL_TOKEN") or DEV_INTERNAL_TOKEN,
                    environment=env.get("CONVEYOR_ENVIRONMENT") or "development",
                    extra_env={k: v for k, v in env.items() if k.startswith("CONVEYOR_")},
                    cwd=cwd,
                    **(overrides or {}),
                ),
                terminal,
            )
            stack.start()
            key = dev_api_key(stack, paths)
            write_dev_env(paths.env_file, gateway_url=stack.gateway_url, api_key=key)
            _banner(terminal, stack, key, paths, cwd)
            while not (crashed := stack.crashed()):
                time.sleep(POLL_SECONDS)
            for child in crashed:
                terminal.note(f"{child.name} exited with code {child.returncode}; stopping all.")
            return 1
        except ShutdownRequested as exc:
            terminal.note(f"{exc} received; stopping.")
            return 0
        except StackError as exc:
            terminal.note(f"could not start: {exc}")
            return 1
        finally:
            if stack is not None:
                stack.stop(grace, hurry=signals.hurry)
            if redis_server is not None:
                redis_server.stop()
            if stack is not None or redis_server is not None:
                terminal.note("stopped.")


def main() -> None:
    env = dict(os.environ)
    configure_logging(
        "devstack", json=False, level=env.get("CONVEYOR_DEVSTACK_LOG_LEVEL", "WARNING")
    )
    sys.exit(run(env, Path.cwd(), Terminal()))


if __name__ == "__main__":
    main()
