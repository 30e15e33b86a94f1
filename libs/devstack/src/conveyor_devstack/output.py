"""Where a child process's output goes: a log file per process (tests), or the terminal with a
coloured `[name]` prefix on every line (dev)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Protocol

_COLOURS = (36, 33, 35, 32, 34, 91, 96, 93, 95, 92)  # ANSI foreground codes
_RESET = "\x1b[0m"


class Output(Protocol):
    def open_for(self, name: str, /) -> tuple[int | IO[bytes], bool]:
        """A stdout for the child `name`, and whether the caller must pump a pipe into
        `write_line` (True) or the child writes straight to the returned file (False)."""

    def write_line(self, name: str, line: bytes, /) -> None: ...

    def note(self, text: str, /) -> None:
        """A line of the supervisor's own (shown under `[devstack]`)."""

    def log_path(self, name: str, /) -> Path | None: ...


class LogFiles:
    """One `<name>.log` per process in `log_dir`, appended to across restarts."""

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def open_for(self, name: str) -> tuple[int | IO[bytes], bool]:
        return self.log_path(name).open("ab"), False

    def write_line(self, name: str, line: bytes) -> None:
        with self.log_path(name).open("ab") as log:
            log.write(line)

    def note(self, text: str) -> None:
        self.write_line("devstack", text.encode() + b"\n")


def _colour_wanted(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


class Terminal:
    """Every line of every child on one stream, prefixed `[name]` (padded, coloured on a tty).

    Lines are written whole under a lock so two processes never interleave within a line.
    """

    def __init__(self, stream: IO[str] | None = None, *, colour: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.colour = _colour_wanted(self.stream) if colour is None else colour
        self._lock = threading.Lock()
        self._colours: dict[str, int] = {}
        self.width = 14

    def log_path(self, _name: str, /) -> Path | None:
        return None

    def open_for(self, _name: str, /) -> tuple[int | IO[bytes], bool]:
        return subprocess.PIPE, True

    def _prefix(self, name: str) -> str:
        label = f"[{name}]".ljust(self.width)
        if not self.colour:
            return label
        code = self._colours.setdefault(name, _COLOURS[len(self._colours) % len(_COLOURS)])
        return f"\x1b[{code}m{label}{_RESET}"

    def write_line(self, name: str, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        with self._lock:
            self.stream.write(f"{self._prefix(name)} {text}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.write_line("devstack", line.encode())
