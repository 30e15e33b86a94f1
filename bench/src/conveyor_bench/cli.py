"""`python -m conveyor_bench [--quick] [--out bench/results]`: runs every scenario, prints the
table, writes `<out>/<date>-<quick|full>.json`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import structlog

from conveyor_bench.profiling import SCENARIOS, ProfileRequest
from conveyor_bench.report import build_rows, render
from conveyor_bench.runner import run
from conveyor_bench.settings import FULL, QUICK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m conveyor_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, no soak (< 2 min)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--workers", type=int, help="Conveyor worker processes (default 1)")
    parser.add_argument("--concurrency", type=int, help="pool size of every worker, and of the "
                        "bare Celery worker (default 2)")  # fmt: skip
    parser.add_argument("--pool", choices=["prefork", "threads", "solo"], help="default prefork")
    parser.add_argument("--jobs", type=int, help="jobs of the drain (and of the yardstick)")
    parser.add_argument("--soak-seconds", type=float, help="0 skips the soak")
    parser.add_argument("--log-level", help="services' and workers' log level (default WARNING)")
    parser.add_argument("--no-durable-postgres", action="store_true",
                        help="the embedded PostgreSQL without fsync (like the test servers)")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, help="process logs (default: a temp folder)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the services and the worker during one scenario, into DIR")  # fmt: skip
    parser.add_argument("--profile-scenario", choices=SCENARIOS, nargs="+",
                        default=["batch-drain"], help="which scenarios --profile samples")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
    base = QUICK if args.quick else FULL
    settings = base.with_overrides(
        workers=args.workers,
        concurrency=args.concurrency,
        pool=args.pool,
        jobs=args.jobs,
        soak_seconds=args.soak_seconds,
        log_level=args.log_level,
        durable_postgres=False if args.no_durable_postgres else None,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    profile = ProfileRequest(args.profile, tuple(args.profile_scenario)) if args.profile else None
    results = run(settings, log_dir=args.log_dir, profile=profile)
    rows = build_rows(results)
    results["table"] = [row.as_dict() for row in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = args.out / f"{stamp}-{settings.mode}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    sys.stdout.write(render(rows) + "\n")
    sys.stdout.write(f"\nresults: {path}\n")
    return 0
