"""Container health check for Conveyor images (Docker HEALTHCHECK and compose).

`python /app/healthcheck.py [--port-env NAME] [PATH]` asks http://127.0.0.1:<port><PATH> and
exits 0 on a 2xx answer, 1 otherwise. Standard library only: the runtime images carry no curl,
and starting the service's own package would cost more than the check."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT_ENV = "CONVEYOR_PORT"
DEFAULT_PORT = "8000"
TIMEOUT_SECONDS = 4.0


def health_url(path: str, port_env: str, environ: dict[str, str] | os._Environ[str]) -> str:
    port = environ.get(port_env) or DEFAULT_PORT
    if not port.isdigit():
        raise ValueError(f"{port_env}={port!r} is not a port number")
    return f"http://127.0.0.1:{port}/{path.lstrip('/')}"


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {exc}\n")
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-env", default=DEFAULT_PORT_ENV)
    parser.add_argument("path", nargs="?", default="/healthz")
    args = parser.parse_args(argv)
    try:
        url = health_url(args.path, args.port_env, os.environ)
    except ValueError as exc:
        sys.stderr.write(f"healthcheck: {exc}\n")
        return 1
    return 0 if check(url) else 1


if __name__ == "__main__":
    sys.exit(main())
