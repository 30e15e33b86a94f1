"""The table: each Conveyor figure beside the yardstick, as a ratio, and against its target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    conveyor: float | None
    yardstick: float | None
    target: str
    verdict: str  # PASS, MISS or "" (no target)

    @property
    def ratio(self) -> float | None:
        if self.conveyor is None or not self.yardstick:
            return None
        return self.conveyor / self.yardstick

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "conveyor": self.conveyor,
            "yardstick": self.yardstick,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "verdict": self.verdict,
        }


def _get(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _at_least(bound: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, _yard: None if value is None else value >= bound


def _at_most(bound: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, _yard: None if value is None else value <= bound


def _ratio_at_least(bound: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, yard: None if value is None or not yard else value / yard >= bound


SERVERS = ("redis", "postgres")


def _soak_memory(results: dict[str, Any], *, servers: bool) -> float | None:
    """Largest USS growth among Conveyor's processes, or among the servers' (Redis keeps
    results for their TTL and grows by design until then; a PostgreSQL backend's caches fill)."""
    growth = _get(results, "soak.memory")
    if not growth:
        return None
    values = [
        entry["growth_percent"]
        for name, entry in growth.items()
        if (name.split(" ", 1)[0] in SERVERS) == servers
    ]
    return float(max(values)) if values else None


def _soak_bounded(results: dict[str, Any]) -> bool | None:
    bounded = _get(results, "soak.bounded")
    if not bounded:
        return None
    if _get(results, "soak.stopped_overloaded_at") is not None:
        return False  # the backlog grew past its limit: not bounded at this rate
    ok = True
    for key in ("stream_length", "outbox_rows"):
        entry = bounded.get(key)
        if entry is None:
            continue
        # Bounded: no upward trend (within a small absolute slack for the batch in flight).
        ok = ok and entry["last_third_mean"] <= entry["first_third_mean"] * 1.5 + 1_000
    return ok


def build_rows(results: dict[str, Any]) -> list[Row]:
    def cpu_total(path: str) -> float | None:
        cpu = _get(results, path)
        if not cpu:
            return None
        return float(sum(v for k, v in cpu.items() if k not in ("other", "bench", "producer")))

    senders = _get(results, "settings.batch_senders")
    clients = _get(results, "settings.single_clients")
    specs: list[tuple[str, str, Any, Any, str, Callable[[Any, Any], bool | None] | None]] = [
        ("end-to-end drain", "jobs/s", _get(results, "drain.drained_per_second"),
         _get(results, "yardstick.drain.drain_per_second"), ">= 0.8x bare", _ratio_at_least(0.8)),
        (f"batch submit, {senders} senders (accepted, durable)", "jobs/s",
         _get(results, "batch_submit.accepted_per_second"),
         _get(results, "yardstick.drain.enqueue_per_second"), ">= 10,000", _at_least(10_000)),
        (f"single submit, {clients} clients", "jobs/s",
         _get(results, "single_submit.accepted_per_second"),
         _get(results, "yardstick.drain.enqueue_per_second"), ">= 1,000", _at_least(1_000)),
        ("single submit p50", "ms", _get(results, "single_submit.latency.p50_ms"),
         _get(results, "yardstick.drain.send_latency.p50_ms"), "", None),
        ("single submit p99", "ms", _get(results, "single_submit.latency.p99_ms"),
         _get(results, "yardstick.drain.send_latency.p99_ms"), "<= 50", _at_most(50)),
        (f"  HTTP floor: no-op FastAPI, {clients} clients", "req/s",
         _get(results, "http_floor.per_second"), None, "", None),
        ("  HTTP floor p99", "ms", _get(results, "http_floor.latency.p99_ms"), None, "", None),
        ("steady: submit->started p50", "ms", _get(results, "steady.submit_to_started.p50_ms"),
         _get(results, "yardstick.steady.submit_to_started.p50_ms"), "", None),
        ("steady: submit->started p95", "ms", _get(results, "steady.submit_to_started.p95_ms"),
         _get(results, "yardstick.steady.submit_to_started.p95_ms"), "", None),
        ("steady: submit->started p99", "ms", _get(results, "steady.submit_to_started.p99_ms"),
         _get(results, "yardstick.steady.submit_to_started.p99_ms"), "<= 30", _at_most(30)),
        ("steady: submit->SUCCEEDED visible p50", "ms",
         _get(results, "steady.submit_to_visible.p50_ms"), None, "", None),
        ("steady: submit->SUCCEEDED visible p95", "ms",
         _get(results, "steady.submit_to_visible.p95_ms"), None, "", None),
        ("steady: submit->SUCCEEDED visible p99", "ms",
         _get(results, "steady.submit_to_visible.p99_ms"), None, "", None),
        ("steady: finished->SUCCEEDED visible p99", "ms",
         _get(results, "steady.finished_to_visible.p99_ms"), None, "<= 100", _at_most(100)),
        ("steady: finished->SUCCEEDED recorded p99", "ms",
         _get(results, "steady.finished_to_recorded.p99_ms"), None, "", None),
        ("steady at a sustainable rate: rate", "jobs/s",
         _get(results, "steady_sustainable.rate_per_second"), None, "", None),
        ("  submit->started p50", "ms", _get(results, "steady_sustainable.submit_to_started.p50_ms"),
         None, "", None),
        ("  submit->started p99", "ms", _get(results, "steady_sustainable.submit_to_started.p99_ms"),
         None, "", None),
        ("  submit->SUCCEEDED visible p99", "ms",
         _get(results, "steady_sustainable.submit_to_visible.p99_ms"), None, "", None),
        ("  finished->SUCCEEDED visible p99", "ms",
         _get(results, "steady_sustainable.finished_to_visible.p99_ms"), None, "", None),
        ("  finished->SUCCEEDED recorded p99", "ms",
         _get(results, "steady_sustainable.finished_to_recorded.p99_ms"), None, "", None),
        ("PG round trips per job (batch)", "/job",
         _get(results, "cost_batch.pg_round_trips_per_job"), None, "<= 0.1", _at_most(0.1)),
        ("PG statements per job (batch)", "/job",
         _get(results, "cost_batch.pg_statements_per_job"), None, "", None),
        ("PG transactions per job (batch)", "/job",
         _get(results, "cost_batch.pg_transactions_per_job"), None, "", None),
        ("PG statements per job (single)", "/job",
         _get(results, "cost_single.pg_statements_per_job"), None, "", None),
        ("PG transactions per job (single)", "/job",
         _get(results, "cost_single.pg_transactions_per_job"), None, "", None),
        ("Redis commands per job (batch)", "/job",
         _get(results, "cost_batch.redis_commands_per_job"),
         _get(results, "yardstick.drain.redis_commands_per_job"), "", None),
        ("CPU per 1,000 jobs, all services (batch)", "s",
         cpu_total("cost_batch.cpu_seconds_per_1000_jobs"),
         None if (w := _get(results, "yardstick.drain.cpu_ms_per_job")) is None
         else sum(v for k, v in w.items() if k != "other"), "", None),
        ("CPU per 1,000 jobs, all services (single)", "s",
         cpu_total("cost_single.cpu_seconds_per_1000_jobs"), None, "", None),
        ("soak: rate", "jobs/s", _get(results, "soak.rate_per_second"), None, ">= 200",
         _at_least(200)),
        ("soak: max USS growth after warm-up, Conveyor", "%",
         _soak_memory(results, servers=False), None, "<= 10", _at_most(10)),
        ("soak: max USS growth after warm-up, Redis/PG", "%",
         _soak_memory(results, servers=True), None, "", None),
    ]  # fmt: skip
    rows = [
        Row(
            name,
            unit,
            conveyor,
            yardstick,
            target,
            _verdict(check(conveyor, yardstick) if check else None),
        )
        for name, unit, conveyor, yardstick, target, check in specs
    ]
    bounded = _soak_bounded(results)
    if bounded is not None:
        rows.append(
            Row("soak: stream and outbox bounded", "", None, None, "bounded", _verdict(bounded))
        )
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(rows: list[Row]) -> str:
    header = ("figure", "unit", "conveyor", "bare celery", "ratio", "target", "")
    lines = [
        (r.name, r.unit, _fmt(r.conveyor), _fmt(r.yardstick),
         "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target or "-", r.verdict)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i in (0, 1, 5, 6) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out.extend(line(cells) for cells in lines)
    return "\n".join(out)
