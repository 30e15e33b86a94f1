"""Issue 6: a real Prometheus (the `prometheus` server from Debian's package) scrapes every
service and a worker while a short burst of jobs runs, and what it stored matches the jobs that
ran: counters by task and status, the worker's own counts, the gateway's route, every target up,
and every metric name docs/architecture.md documents exported by the process that owns it (and
nothing exported that it does not document)."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from conveyor_devstack.ports import free_port
from conveyor_devstack.stack import GATEWAY, JOB_SERVICE, RESULT_SERVICE, Stack
from conveyor_testing.api import auth, wait_all_final
from conveyor_testing.processes import ManagedProcess

pytestmark = [pytest.mark.e2e]

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "the Prometheus server binary `prometheus` is not on PATH: run "
    "`bash deploy/tests/install-tools.sh` (installs Debian's `prometheus` package; "
    ".ci/run does this) and run the tests again"
)
ECHO_JOBS = 30
FAIL_JOBS = 5
# Bounds a wait for data, not a speed requirement: Prometheus scrapes every second.
DATA_TIMEOUT = 30.0
HTTP_SERVICES = (GATEWAY, JOB_SERVICE, RESULT_SERVICE)
# docs/architecture.md: "workers, under names of their own".
WORKER_METRICS = frozenset(
    {
        "conveyor_worker_tasks_total",
        "conveyor_job_run_duration_seconds",
        "conveyor_worker_busy_slots",
    }
)
# docs/architecture.md: "the gateway, under names of its own".
GATEWAY_METRICS = frozenset(
    {"conveyor_rate_limit_decisions_total", "conveyor_rate_limit_failures_total"}
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


def documented_metrics() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(conveyor_[a-z0-9_]+)", section))


def eventually(check: Callable[[], T], *, timeout: float = DATA_TIMEOUT) -> T:
    """`check()`'s value once it stops raising AssertionError; its last error after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


class Prometheus:
    """A Prometheus server of the test's own, on a free loopback port, storing in a temp dir."""

    def __init__(self, binary: str, workdir: Path, targets: dict[str, str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(self._config(targets), sort_keys=False))
        self.process: ManagedProcess | None = None
        self.url = ""

    @staticmethod
    def _config(targets: dict[str, str]) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [address]}],
                }
                for job, address in targets.items()
            ],
        }

    def start(self) -> None:
        # A free port can be taken between choosing and binding it: try another then.
        for attempt in range(3):
            port = free_port()
            process = ManagedProcess(
                f"prometheus-{attempt}",
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                env={},
                log_dir=self.workdir,
            ).start()
            self.process, self.url = process, f"http://127.0.0.1:{port}"
            try:
                process.wait_http_ok(f"{self.url}/-/ready", timeout=30.0)
                return
            except RuntimeError:
                if "address already in use" not in process.read_log():
                    raise
        raise RuntimeError(f"prometheus found no free port:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(timeout=10.0)

    def tail(self) -> str:
        return self.process.tail() if self.process is not None else ""

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5.0)
        assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's vector as (labels, value) pairs."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def by(self, label: str, promql: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in self.query(promql)}


@dataclass(frozen=True)
class Burst:
    """What the API says ran: counts by task and by final status."""

    by_task: dict[str, int]
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_task.values())


@pytest.fixture(scope="module")
def prometheus(
    module_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    targets = {name: module_stack.health_url(name) for name in HTTP_SERVICES}
    targets.update({name: module_stack.health_url(name) for name in module_stack.worker_names})
    server = Prometheus(
        binary,
        tmp_path_factory.mktemp("prometheus"),
        {job: url.removeprefix("http://") for job, url in targets.items()},
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def burst(module_stack: Stack, prometheus: Prometheus) -> Burst:
    """Runs the jobs while Prometheus is already scraping, and waits until the API says every
    one is final."""
    key = module_stack.create_api_key(f"prom-{uuid.uuid4().hex[:8]}", "e2e")
    bodies = [{"task": "echo", "args": {"n": n}} for n in range(ECHO_JOBS)] + [
        {"task": "fail", "args": {"message": "planned", "permanent": True}}
        for _ in range(FAIL_JOBS)
    ]
    with httpx.Client(base_url=module_stack.gateway_url, timeout=10.0) as client:
        ids = []
        for body in bodies:
            answer = client.post("/v1/jobs", json=body, headers=auth(key))
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        final = wait_all_final(client, ids, key, timeout=60)
    return Burst(
        by_task=dict(Counter(job["task"] for job in final.values())),
        by_status=dict(Counter(job["status"] for job in final.values())),
    )


def test_the_burst_ran_as_planned(burst: Burst) -> None:
    # The metrics below are compared with these counts; make sure they are the planned ones.
    assert burst.by_task == {"echo": ECHO_JOBS, "fail": FAIL_JOBS}
    assert burst.by_status == {"SUCCEEDED": ECHO_JOBS, "FAILED": FAIL_JOBS}


def test_every_target_is_up(prometheus: Prometheus, module_stack: Stack, burst: Burst) -> None:
    expected = {*HTTP_SERVICES, *module_stack.worker_names}

    def check() -> None:
        up = prometheus.by("job", "up")
        assert set(up) == expected, f"targets {sorted(up)}, expected {sorted(expected)}"
        assert all(value == 1 for value in up.values()), f"up: {up}\n{prometheus.tail()}"

    eventually(check)


def test_job_counters_match_the_jobs_run(prometheus: Prometheus, burst: Burst) -> None:
    def check() -> None:
        submitted = prometheus.by("task", "sum by (task) (conveyor_jobs_submitted_total)")
        assert submitted == burst.by_task, f"submitted by task: {submitted}"
        assert prometheus.by("", "sum(conveyor_jobs_submitted_total)") == {"": burst.total}
        started = prometheus.by("task", "sum by (task) (conveyor_jobs_started_total)")
        assert started == burst.by_task, f"started by task: {started}"
        finished = prometheus.by("status", "sum by (status) (conveyor_jobs_finished_total)")
        assert finished == burst.by_status, f"finished by status: {finished}"

    eventually(check)
    # Job counts come from job-service alone (PostgreSQL's view), so no sum counts a job twice.
    for name in ("submitted", "started", "finished"):
        owners = prometheus.by("job", f"count by (job) (conveyor_jobs_{name}_total)")
        assert set(owners) == {JOB_SERVICE}, f"conveyor_jobs_{name}_total from {owners}"


def test_the_worker_counts_the_tasks_it_ran(
    prometheus: Prometheus, module_stack: Stack, burst: Burst
) -> None:
    (worker,) = module_stack.worker_names

    def check() -> None:
        outcomes = prometheus.by(
            "outcome", f'sum by (outcome) (conveyor_worker_tasks_total{{job="{worker}"}})'
        )
        assert outcomes == {"succeeded": ECHO_JOBS, "failed": FAIL_JOBS}, outcomes
        by_task = prometheus.by(
            "task", f'sum by (task) (conveyor_worker_tasks_total{{job="{worker}"}})'
        )
        assert by_task == burst.by_task, by_task
        runs = prometheus.by(
            "task", f'sum by (task) (conveyor_job_run_duration_seconds_count{{job="{worker}"}})'
        )
        assert runs == burst.by_task, f"run-duration observations by task: {runs}"
        busy = prometheus.by("", f'sum(conveyor_worker_busy_slots{{job="{worker}"}})')
        assert busy == {"": 0}, f"busy slots after the burst: {busy}"

    eventually(check)


def test_the_gateway_counts_its_jobs_route(prometheus: Prometheus, burst: Burst) -> None:
    # The burst's submissions are the only POSTs the gateway answered: all of them must be
    # under the route template, so the failure shows whatever label they got instead.
    def check() -> None:
        posts = prometheus.query(
            "sum by (service, route, status) "
            f'(conveyor_http_requests_total{{job="{GATEWAY}",method="POST"}})'
        )
        assert posts == [
            ({"service": GATEWAY, "route": "/v1/jobs", "status": "202"}, burst.total)
        ], f"gateway POSTs by service, route and status: {posts}"
        latency = prometheus.by(
            "route",
            "sum by (route) "
            f'(conveyor_http_request_duration_seconds_count{{job="{GATEWAY}",method="POST"}})',
        )
        assert latency == {"/v1/jobs": burst.total}, f"latency observations by route: {latency}"

    eventually(check)


def exported_by_job(prometheus: Prometheus) -> dict[str, set[str]]:
    """Metric names each target declares (`# TYPE` lines), with or without samples yet."""
    names: dict[str, set[str]] = {}
    for entry in prometheus.api("targets/metadata", match_target='{job=~".+"}'):
        if entry["metric"].startswith("conveyor_"):
            names.setdefault(entry["target"]["job"], set()).add(entry["metric"])
    return names


def with_samples_by_job(prometheus: Prometheus) -> dict[str, set[str]]:
    """Metric names (histogram series folded into their family) with a sample, per target."""
    names: dict[str, set[str]] = {}
    for labels, _ in prometheus.query('count by (__name__, job) ({__name__=~"conveyor_.+"})'):
        name = labels["__name__"]
        if name.endswith("_created"):
            continue  # a creation timestamp beside a counter or histogram of the same family
        for suffix in _HISTOGRAM_SUFFIXES:
            name = name.removesuffix(suffix)
        names.setdefault(labels["job"], set()).add(name)
    return names


def test_every_documented_metric_is_exported_by_its_owner(
    prometheus: Prometheus, module_stack: Stack, burst: Burst
) -> None:
    documented = documented_metrics()
    http = {name for name in documented if name.startswith("conveyor_http_")}
    assert http, "docs/architecture.md lists no HTTP metrics"
    assert WORKER_METRICS | GATEWAY_METRICS <= documented
    expected = {name: set(http) for name in HTTP_SERVICES}
    expected[JOB_SERVICE] |= documented - http - WORKER_METRICS - GATEWAY_METRICS
    expected[GATEWAY] |= GATEWAY_METRICS
    expected.update({worker: set(WORKER_METRICS) for worker in module_stack.worker_names})

    def check() -> dict[str, set[str]]:
        exported = exported_by_job(prometheus)
        missing = {job: sorted(want - exported.get(job, set())) for job, want in expected.items()}
        assert not any(missing.values()), f"documented but not exported: {missing}"
        return exported

    exported = eventually(check)
    # `_created` is a counter's or histogram's creation-time sample, not a metric of its own.
    declared = {
        job: {n for n in names if not n.endswith("_created")} for job, names in exported.items()
    }
    undocumented = {
        job: sorted(names - documented) for job, names in declared.items() if names - documented
    }
    assert not undocumented, f"exported but not documented in docs/architecture.md: {undocumented}"

    # A name with samples from two services would be counted twice by a sum across them.
    owners: dict[str, set[str]] = {}
    for job, names in with_samples_by_job(prometheus).items():
        for name in names - http:
            owners.setdefault(name, set()).add(job)
    shared = {name: sorted(jobs) for name, jobs in owners.items() if len(jobs) > 1}
    assert not shared, f"metrics with samples from more than one service: {shared}"
