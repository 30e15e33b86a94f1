"""`conveyor`: submit jobs and read them from a shell. Answers are JSON on stdout; errors are
the API's problem (or a message) as JSON on stderr, with exit status 1."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from itertools import islice
from typing import Any, TextIO

from conveyor_client import _protocol as p
from conveyor_client.client import Client
from conveyor_client.errors import ConveyorAPIError, ConveyorError

EXIT_OK = 0
EXIT_FAILED = 1


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    parser.add_argument("--url", help=f"gateway URL (default ${p.GATEWAY_URL_ENV} or "
                        f"{p.DEFAULT_GATEWAY_URL})")  # fmt: skip
    parser.add_argument("--api-key", help=f"API key (default ${p.API_KEY_ENV})")
    parser.add_argument("--http-timeout", type=float, default=p.DEFAULT_TIMEOUT,
                        help="seconds to wait for each HTTP answer")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit a job")
    submit.add_argument("task")
    submit.add_argument("--args", type=_json_object, default=None, help="arguments, a JSON object")
    submit.add_argument("--queue")
    submit.add_argument("--priority", type=int)
    submit.add_argument("--max-attempts", type=int)
    submit.add_argument("--timeout-seconds", type=int, help="time limit of one attempt")
    submit.add_argument("--run-at", help="ISO 8601 instant with a UTC offset")
    submit.add_argument("--tag", action="append", dest="tags", help="repeatable")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--wait", action="store_true", help="wait for the job to finish")
    submit.add_argument("--wait-timeout", type=float, default=300.0)
    submit.add_argument("--poll-interval", type=float, default=0.5)

    get = commands.add_parser("get", help="show a job")
    get.add_argument("job_id")

    listing = commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--task")
    listing.add_argument("--queue")
    listing.add_argument("--created-after")
    listing.add_argument("--created-before")
    listing.add_argument("--limit", type=int, default=50, help="at most this many jobs")

    result = commands.add_parser("result", help="show a succeeded job's result")
    result.add_argument("job_id")

    commands.add_parser("tasks", help="show the task catalog")
    return parser


def _emit(value: Any, stream: TextIO) -> None:
    stream.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _submit(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    job = client.submit(
        args.task,
        args.args,
        idempotency_key=args.idempotency_key,
        queue=args.queue,
        priority=args.priority,
        max_attempts=args.max_attempts,
        timeout_seconds=args.timeout_seconds,
        run_at=args.run_at,
        tags=args.tags,
    )
    if not args.wait:
        _emit(job, out)
        return EXIT_OK
    final = client.wait(job["id"], timeout=args.wait_timeout, poll_interval=args.poll_interval)
    if final["status"] != "SUCCEEDED":
        _emit({"job": final}, out)
        return EXIT_FAILED
    _emit({"job": final, "result": client.result(final["id"])}, out)
    return EXIT_OK


def _run(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "submit":
        return _submit(client, args, out)
    if args.command == "get":
        _emit(client.get(args.job_id), out)
    elif args.command == "list":
        jobs = client.list(
            status=args.status,
            task=args.task,
            queue=args.queue,
            created_after=args.created_after,
            created_before=args.created_before,
            page_size=min(max(args.limit, 1), 500),
        )
        _emit(list(islice(jobs, max(args.limit, 0))), out)
    elif args.command == "result":
        _emit({"job_id": args.job_id, "result": client.result(args.job_id)}, out)
    elif args.command == "tasks":
        _emit(client.tasks(), out)
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        with Client(args.url, args.api_key, args.http_timeout) as client:
            return _run(client, args, out)
    except ConveyorAPIError as exc:
        _emit(exc.problem, err)
    except (ConveyorError, ValueError) as exc:
        _emit({"error": type(exc).__name__, "detail": str(exc)}, err)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
