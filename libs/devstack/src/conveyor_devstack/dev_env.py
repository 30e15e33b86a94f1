"""`.conveyor/dev.env`: what a shell, the CLI or a test needs to reach the dev stack."""

from __future__ import annotations

import os
from pathlib import Path


def write_dev_env(path: Path, *, gateway_url: str, api_key: str) -> None:
    """Writes exactly two lines, atomically (a reader polling for the file never sees half of
    it) and readable only by its owner (it holds a key)."""
    for name, value in (("gateway_url", gateway_url), ("api_key", api_key)):
        if not value or any(c in value for c in "\r\n\"'$` "):
            raise ValueError(f"{name} {value!r} cannot be written to a dotenv file as is")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"CONVEYOR_GATEWAY_URL={gateway_url}\nCONVEYOR_API_KEY={api_key}\n")
    tmp.replace(path)


def read_dev_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values
