"""The load generator: one pooled aiohttp session against the gateway's public API.

Three shapes: batches back to back from a few concurrent senders; a closed loop of N clients
(asyncio tasks) each submitting one job at a time; and an open loop at a fixed rate, where a
send is never delayed by slow answers (each one is its own task), so latency is not hidden by
coordinated omission.

The generator shares the machine's two cores with the stack it measures, so it should cost as
little as it can: aiohttp's client takes a fraction of httpx's CPU per request (ADR 0023), and
the no-op job's body is encoded once."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

NOOP_JOB: dict[str, Any] = {"task": "echo", "args": {}}
_NOOP_JOB_BODY = json.dumps(NOOP_JOB).encode()
_JSON = {"Content-Type": "application/json"}


class SubmitError(RuntimeError):
    """The API refused or failed a submit; the bench stops rather than report a wrong figure."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoadClient:
    """An API key's pooled connections to one base URL; every answer is read whole."""

    def __init__(self, base_url: str, api_key: str, *, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"},
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=30.0),
            # The API sets no cookies; a jar would only be searched on every answer.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> Answer:
        data = raw if raw is not None else json.dumps(body).encode()
        async with self._session.post(self.base_url + path, data=data, headers=_JSON) as answer:
            return Answer(answer.status, await answer.read())

    async def submit_noop(self) -> Answer:
        return await self.post("/v1/jobs", raw=_NOOP_JOB_BODY)

    async def get(self, path: str) -> Answer:
        async with self._session.get(self.base_url + path) as answer:
            return Answer(answer.status, await answer.read())

    async def aclose(self) -> None:
        await self._session.close()


def make_client(base_url: str, api_key: str, *, connections: int) -> LoadClient:
    return LoadClient(base_url, api_key, connections=connections)


# A request that could not be made or answered at all (refused, reset, timed out).
TransportError = (aiohttp.ClientError, asyncio.TimeoutError)


def _check(path: str, answer: Answer) -> Any:
    if answer.status not in (200, 202):
        raise SubmitError(f"{path} answered {answer.status}: {answer.body[:300]!r}")
    return answer.json()


@dataclass
class BatchOutcome:
    jobs: int
    seconds: float
    first_sent: float  # time.monotonic()
    request_seconds: list[float] = field(default_factory=list)


async def submit_batches(
    client: LoadClient, *, jobs: int, batch_size: int, senders: int
) -> BatchOutcome:
    """`jobs` no-op jobs in batches of `batch_size` from `senders` concurrent senders; returns
    when every batch was accepted (committed: the API answers 202 after the commit)."""
    body = {"jobs": [NOOP_JOB] * batch_size}
    batches = [batch_size] * (jobs // batch_size) + (
        [jobs % batch_size] if jobs % batch_size else []
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for size in batches:
        queue.put_nowait(size)
    durations: list[float] = []

    async def sender() -> None:
        while True:
            try:
                size = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            payload = body if size == batch_size else {"jobs": [NOOP_JOB] * size}
            sent = time.perf_counter()
            answer = _check("/v1/jobs/batch", await client.post("/v1/jobs/batch", payload))
            durations.append(time.perf_counter() - sent)
            if len(answer["jobs"]) != size:
                raise SubmitError(f"a batch of {size} came back with {len(answer['jobs'])} jobs")

    first = time.monotonic()
    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return BatchOutcome(jobs, time.perf_counter() - start, first, durations)


@dataclass
class ClosedLoopOutcome:
    jobs: int
    seconds: float
    latencies: list[float]
    errors: int


async def closed_loop(client: LoadClient, *, clients: int, seconds: float) -> ClosedLoopOutcome:
    """`clients` tasks, each POSTing one job and waiting for the answer, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            response = await client.submit_noop()
            if response.status == 202:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1
                if errors > 100:
                    _check("/v1/jobs", response)

    start = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return ClosedLoopOutcome(len(latencies), time.perf_counter() - start, latencies, errors)


@dataclass
class SubmittedJob:
    job_id: str
    submitted_at: datetime  # UTC wall clock of when the send was due
    sent: float  # time.perf_counter() of the same moment
    answered: float
    visible: float | None = None  # perf_counter when a GET first showed SUCCEEDED (sampled)
    visible_at: datetime | None = None


@dataclass
class OpenLoopOutcome:
    jobs: list[SubmittedJob]
    seconds: float
    errors: int
    late_sends: int  # sends created more than 5 ms behind schedule (generator overloaded)
    stopped_at: float | None = None  # seconds in, when sending stopped before the end
    polls: int = 0  # visibility GETs sent


async def open_loop(
    client: LoadClient,
    *,
    rate: float,
    seconds: float,
    sample_every: int = 0,
    poll_interval: float = 0.01,
    stop: asyncio.Event | None = None,
    max_in_flight: int = 32,
    max_polls_in_flight: int = 2,
    max_backlog_seconds: float = 10.0,
) -> OpenLoopOutcome:
    """Submits at `rate` jobs/s for `seconds`, each send its own task. Every `sample_every`-th
    job (0: none) is then polled with `GET /v1/jobs/{id}` every `poll_interval` s until it is
    SUCCEEDED, to time when that becomes visible through the API.

    At most `max_in_flight` requests are on the wire at once (a pool degrades badly with
    thousands waiting); a send that has to wait for a slot is still timed from when it was due,
    so a slow system's queueing shows in the latencies instead of being hidden. Sending stops
    early once `stop` is set, or once more than `max_backlog_seconds` of sends wait (the system
    cannot sustain the rate).

    The polls have connections and a cap of their own (`max_polls_in_flight`): they never hold
    a send back, and the observer's load stays bounded when jobs are slow to show (uncapped,
    a slow system polled ever more jobs every 10 ms and the GETs outnumbered the submits)."""
    jobs: list[SubmittedJob] = []
    tasks: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(max_in_flight)
    poll_slots = asyncio.Semaphore(max_polls_in_flight)
    errors = 0
    late = 0
    waiting = 0
    polls = 0

    async def poll(job: SubmittedJob) -> None:
        nonlocal polls
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            try:
                async with poll_slots:
                    polls += 1
                    response = await client.get(f"/v1/jobs/{job.job_id}")
            except TransportError:
                await asyncio.sleep(poll_interval)
                continue
            if response.status == 200 and response.json()["status"] == "SUCCEEDED":
                job.visible = time.perf_counter()
                job.visible_at = datetime.now(UTC)
                return
            await asyncio.sleep(poll_interval)

    async def send(number: int, due: float, due_at: datetime) -> None:
        nonlocal errors, waiting
        waiting += 1
        async with slots:
            waiting -= 1
            try:
                response = await client.submit_noop()
            except TransportError:
                errors += 1
                return
        answered = time.perf_counter()
        if response.status != 202:
            errors += 1
            if errors > 100:
                _check("/v1/jobs", response)
            return
        job = SubmittedJob(response.json()["id"], due_at, due, answered)
        jobs.append(job)
        if sample_every and number % sample_every == 0:
            await poll(job)

    total = int(rate * seconds)
    stopped_at: float | None = None
    start = time.perf_counter()
    start_at = datetime.now(UTC)
    for number in range(total):
        if (stop is not None and stop.is_set()) or waiting > rate * max_backlog_seconds:
            stopped_at = time.perf_counter() - start
            break
        offset = number / rate
        delay = start + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        task = asyncio.create_task(
            send(number, start + offset, start_at + timedelta(seconds=offset))
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    submitted = time.perf_counter() - start
    if tasks:
        await asyncio.gather(*tasks)
    return OpenLoopOutcome(jobs, submitted, errors, late, stopped_at, polls)
