"""The whole of Conveyor as child processes: job-service, result-service, api-gateway and N
workers, started with the commands and `CONVEYOR_*` settings of `docs/architecture.md`.

Used by `make dev`, the end-to-end and fault tests (`conveyor_testing`'s `stack_factory`) and
benchmarks. Any one process can be stopped, killed (`kill -9`) and started again; `stop()`
leaves no process behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import structlog

from conveyor_common.settings import DEV_INTERNAL_TOKEN
from conveyor_devstack.output import Output
from conveyor_devstack.ports import free_ports
from conveyor_devstack.process import DEFAULT_GRACE_SECONDS, Child

log = structlog.get_logger(__name__)

JOB_SERVICE = "job-service"
RESULT_SERVICE = "result-service"
GATEWAY = "api-gateway"
WORKER_PREFIX = "worker-"
# Keys of `StackConfig.service_env`: "worker" stands for every worker.
WORKER = "worker"
SERVICES = frozenset({JOB_SERVICE, RESULT_SERVICE, GATEWAY, WORKER})


class StackError(RuntimeError):
    """The stack could not be brought up (a command failed, a process died, not ready in time)."""


@dataclass
class StackConfig:
    database_url: str
    redis_url: str
    redis_namespace: str = "conveyor"
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    job_service_port: int = 8001
    result_service_port: int = 8002
    # One health/metrics port per worker; empty means consecutive ports from 8003.
    worker_health_ports: list[int] = field(default_factory=list)
    workers: int = 1
    worker_concurrency: int | None = None
    worker_pool: str | None = None
    internal_token: str = DEV_INTERNAL_TOKEN
    environment: str = "development"
    # Further settings for every process (e.g. CONVEYOR_LOG_LEVEL), applied before ours.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable
    cwd: Path | None = None
    # Stand-ins for `python -m <module>` by process name, and for `python -m job_service` in
    # one-shot commands: tests of the supervision itself run small dummy programs.
    commands: Mapping[str, Sequence[str]] = field(default_factory=dict)
    job_service_cli: Sequence[str] = ()
    # Least-privilege set-ups: `migrate` connects as `migration_database_url` (else
    # `database_url`) and grants `database_app_role` what job-service needs; `service_env` adds
    # settings for one kind of process (a key of SERVICES), e.g. each one's Redis ACL user.
    migration_database_url: str | None = None
    database_app_role: str | None = None
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if unknown := set(self.service_env) - SERVICES:
            raise ValueError(f"service_env: no service {sorted(unknown)}; use {sorted(SERVICES)}")
        if not self.worker_health_ports:
            self.worker_health_ports = [8003 + i for i in range(self.workers)]
        if len(self.worker_health_ports) != self.workers:
            raise ValueError("one worker health port per worker")

    @classmethod
    def on_free_ports(cls, *, database_url: str, redis_url: str, workers: int = 1,
                      **kwargs: object) -> StackConfig:  # fmt: skip
        """Every port a distinct free loopback port (tests, benchmarks, a second stack)."""
        gateway, job_service, result_service, *worker_ports = free_ports(3 + workers)
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            workers=workers,
            gateway_port=gateway,
            job_service_port=job_service,
            result_service_port=result_service,
            worker_health_ports=worker_ports,
            **kwargs,  # type: ignore[arg-type]
        )


class Stack:
    """Runs and supervises the processes of one Conveyor deployment on this machine."""

    def __init__(self, config: StackConfig, output: Output) -> None:
        self.config = config
        self.output = output
        self.processes: dict[str, Child] = {}
        for name, module_args, port, extra in self._process_specs():
            self.processes[name] = Child(
                name,
                list(config.commands.get(name) or [config.python, "-m", *module_args]),
                env=self._env(
                    port=port,
                    extra=extra,
                    database=name == JOB_SERVICE,
                    service=WORKER if name.startswith(WORKER_PREFIX) else name,
                ),
                output=output,
                cwd=config.cwd,
            )

    # -- addresses --------------------------------------------------------------------------

    def _url(self, port: int) -> str:
        return f"http://{self.config.host}:{port}"

    @property
    def gateway_url(self) -> str:
        return self._url(self.config.gateway_port)

    @property
    def job_service_url(self) -> str:
        return self._url(self.config.job_service_port)

    @property
    def result_service_url(self) -> str:
        return self._url(self.config.result_service_port)

    @property
    def worker_names(self) -> list[str]:
        return [f"{WORKER_PREFIX}{i + 1}" for i in range(self.config.workers)]

    def health_url(self, name: str) -> str:
        """Base URL of the process's `/healthz`, `/readyz` and `/metrics`."""
        return self._url(self._port_of(name))

    def _port_of(self, name: str) -> int:
        ports = {
            GATEWAY: self.config.gateway_port,
            JOB_SERVICE: self.config.job_service_port,
            RESULT_SERVICE: self.config.result_service_port,
        }
        ports.update(zip(self.worker_names, self.config.worker_health_ports, strict=True))
        try:
            return ports[name]
        except KeyError:
            raise KeyError(f"no process {name!r}; there are {sorted(ports)}") from None

    # -- process set-up ---------------------------------------------------------------------

    def _process_specs(self) -> Iterator[tuple[str, list[str], int, dict[str, str]]]:
        cfg = self.config
        yield JOB_SERVICE, ["job_service", "serve"], cfg.job_service_port, {}
        yield RESULT_SERVICE, ["result_service"], cfg.result_service_port, {}
        yield GATEWAY, ["api_gateway"], cfg.gateway_port, {}
        for name, port in zip(self.worker_names, cfg.worker_health_ports, strict=True):
            extra = {
                "CONVEYOR_WORKER_HEALTH_PORT": str(port),
                # Distinct Celery node names: two workers on one host must not share one.
                "CONVEYOR_WORKER_NAME": f"{name}@{cfg.redis_namespace}",
            }
            if cfg.worker_concurrency is not None:
                extra["CONVEYOR_WORKER_CONCURRENCY"] = str(cfg.worker_concurrency)
            if cfg.worker_pool is not None:
                extra["CONVEYOR_WORKER_POOL"] = cfg.worker_pool
            yield name, ["conveyor_worker"], port, extra

    def _env(
        self, *, port: int | None = None, extra: Mapping[str, str] | None = None,
        database: bool = False, service: str | None = None,
    ) -> dict[str, str]:  # fmt: skip
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(cfg.extra_env)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "CONVEYOR_ENVIRONMENT": cfg.environment,
                "CONVEYOR_HOST": cfg.host,
                "CONVEYOR_REDIS_URL": cfg.redis_url,
                "CONVEYOR_REDIS_NAMESPACE": cfg.redis_namespace,
                "CONVEYOR_INTERNAL_TOKEN": cfg.internal_token,
                "CONVEYOR_JOB_SERVICE_URL": self.job_service_url,
                "CONVEYOR_RESULT_SERVICE_URL": self.result_service_url,
            }
        )
        if database:
            env["CONVEYOR_DATABASE_URL"] = cfg.database_url
        if port is not None:
            env["CONVEYOR_PORT"] = str(port)
        env.update(cfg.service_env.get(service or "", {}))
        env.update(extra or {})
        return env

    def _migration_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.config.migration_database_url:
            env["CONVEYOR_DATABASE_MIGRATION_URL"] = self.config.migration_database_url
        if self.config.database_app_role:
            env["CONVEYOR_DATABASE_APP_ROLE"] = self.config.database_app_role
        return env

    # -- one-shot commands ------------------------------------------------------------------

    def run_job_service_command(self, *args: str, timeout: float = 120.0) -> str:
        """`python -m job_service <args>` to completion; returns its stdout (stderr goes to
        the stack's output under the command's name). Raises `StackError` if it fails."""
        name = args[0] if args else "job-service-cli"
        stderr, pump = self.output.open_for(name)
        try:
            cli = list(self.config.job_service_cli) or [self.config.python, "-m", "job_service"]
            env = self._env(database=True, service=JOB_SERVICE)
            if args[:1] == ("migrate",):
                env.update(self._migration_env())
            completed = subprocess.run(
                [*cli, *args],
                env=env,
                cwd=self.config.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"`job_service {' '.join(args)}` ran over {timeout}s") from exc
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        if pump and completed.stderr:
            for line in completed.stderr.splitlines(keepends=True):
                self.output.write_line(name, line)
        if completed.returncode != 0:
            detail = completed.stderr.decode(errors="replace") if completed.stderr else ""
            path = self.output.log_path(name)
            if path is not None and path.exists():
                detail = "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            raise StackError(
                f"`python -m job_service {' '.join(args)}` exited {completed.returncode}:\n{detail}"
            )
        return completed.stdout.decode()

    def migrate(self) -> None:
        self.run_job_service_command("migrate")

    def create_api_key(self, tenant: str, name: str) -> str:
        out = self.run_job_service_command("create-api-key", "--tenant", tenant, "--name", name)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines:
            raise StackError("`job_service create-api-key` printed no key")
        return lines[-1]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0, migrate: bool = True) -> Stack:
        """Migrates, starts every process and waits until each `/readyz` answers 200.

        Only job-service touches the database, so the others start while the migration runs
        (their start-up is mostly imports, and the migration leaves a core idle)."""
        try:
            for name, child in self.processes.items():
                if name != JOB_SERVICE:
                    child.start()
            if migrate:
                self.migrate()
            self.processes[JOB_SERVICE].start()
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop(grace=5.0)
            raise
        log.info("devstack.stack.ready", gateway=self.gateway_url, workers=self.config.workers)
        return self

    def wait_ready(self, names: list[str] | None = None, *, timeout: float = 90.0) -> None:
        pending = list(names if names is not None else self.processes)
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in list(pending):
                    child = self.processes[name]
                    if not child.alive():
                        raise StackError(
                            f"{name} exited with code {child.returncode} before it was ready:\n"
                            f"{child.tail()}"
                        )
                    try:
                        response = client.get(f"{self.health_url(name)}/readyz")
                    except httpx.HTTPError as exc:
                        last[name] = repr(exc)
                        continue
                    if response.status_code == 200:
                        pending.remove(name)
                    else:
                        last[name] = f"{response.status_code} {response.text[:300]}"
                if not pending:
                    return
                if time.monotonic() > deadline:
                    details = "\n\n".join(
                        f"{n}: last answer {last.get(n, 'none')}\n{self.processes[n].tail()}"
                        for n in pending
                    )
                    raise StackError(f"not ready within {timeout}s: {pending}\n{details}")
                time.sleep(0.1)

    def process(self, name: str) -> Child:
        try:
            return self.processes[name]
        except KeyError:
            raise KeyError(f"no process {name!r}; there are {sorted(self.processes)}") from None

    def stop_process(self, name: str, grace: float = DEFAULT_GRACE_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL to its group after `grace`; returns the exit code."""
        return self.process(name).stop(grace)

    def kill_process(self, name: str, *, whole_group: bool = True) -> None:
        """`kill -9`: the whole group by default, or the main process alone."""
        child = self.process(name)
        if whole_group:
            child.kill()
        else:
            child.kill_main()

    def start_process(self, name: str, *, wait: bool = True, timeout: float = 60.0) -> Child:
        child = self.process(name).start()
        if wait:
            self.wait_ready([name], timeout=timeout)
        return child

    def restart_process(
        self, name: str, *, grace: float = DEFAULT_GRACE_SECONDS, wait: bool = True,
        timeout: float = 60.0,
    ) -> Child:  # fmt: skip
        self.process(name).stop(grace)
        return self.start_process(name, wait=wait, timeout=timeout)

    def crashed(self) -> list[Child]:
        """Processes that exited without being asked to."""
        return [child for child in self.processes.values() if child.crashed()]

    def stop(
        self, grace: float = DEFAULT_GRACE_SECONDS, *, hurry: Callable[[], bool] | None = None
    ) -> None:
        """Stops every process: the gateway first (no new requests), then the workers (warm
        shutdown finishes running tasks), then result-service and job-service; each gets
        SIGTERM and, after `grace` seconds (or once `hurry()` is true), SIGKILL to its group."""
        deadline = time.monotonic() + grace
        waves = [[GATEWAY], self.worker_names, [RESULT_SERVICE, JOB_SERVICE]]
        for wave in waves:
            children = [self.processes[name] for name in wave]
            for child in children:
                child.request_stop()
            for child in children:
                child.finish_stop(max(deadline, time.monotonic() + 1.0), hurry=hurry)
        for child in self.processes.values():
            child.kill()  # sweeps groups of earlier runs and processes that were never asked
        log.info("devstack.stack.stopped")

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
