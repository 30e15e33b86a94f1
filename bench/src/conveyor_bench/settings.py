"""How big each scenario is: the full run (the issue's sizes) and `--quick`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class BenchSettings:
    mode: str  # "full" or "quick"
    jobs: int  # yardstick drain and Conveyor's batch submit + drain
    batch_size: int
    # Batch requests in flight at once. A 1,000-job request spends most of its time waiting for
    # its durable commit, not on CPU, so a client submitting in bulk keeps a few in flight:
    # measured on 2 cores, 2 senders carried ~7,000 jobs/s and 4 ~11,800.
    batch_senders: int
    single_clients: int
    single_seconds: float
    steady_rate: float
    steady_seconds: float
    visibility_sample_every: int
    visibility_poll_interval: float
    bare_steady_seconds: float
    soak_seconds: float  # 0: no soak
    soak_warmup_seconds: float
    soak_sample_seconds: float
    warmup_jobs: int
    workers: int = 1
    concurrency: int = 2
    pool: str = "prefork"
    log_level: str = "WARNING"
    durable_postgres: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **changes: Any) -> BenchSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


FULL = BenchSettings(
    mode="full",
    jobs=20_000,
    batch_size=1_000,
    batch_senders=4,
    single_clients=32,
    single_seconds=20.0,
    steady_rate=200.0,
    steady_seconds=30.0,
    visibility_sample_every=20,
    visibility_poll_interval=0.01,
    bare_steady_seconds=15.0,
    soak_seconds=600.0,
    soak_warmup_seconds=60.0,
    soak_sample_seconds=10.0,
    warmup_jobs=500,
)

QUICK = BenchSettings(
    mode="quick",
    jobs=1_000,
    batch_size=1_000,
    batch_senders=4,
    single_clients=32,
    single_seconds=5.0,
    steady_rate=200.0,
    steady_seconds=5.0,
    visibility_sample_every=20,
    visibility_poll_interval=0.01,
    bare_steady_seconds=5.0,
    soak_seconds=0.0,
    soak_warmup_seconds=0.0,
    soak_sample_seconds=5.0,
    warmup_jobs=100,
)
