"""A real `redis-server` on a loopback port, with no persistence, that tests can stop and restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from .net import LOOPBACK, free_port
from .process import ManagedProcess

START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process; `stop()`/`start()` keep its port, so clients can reconnect."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server is not installed, and the tests need a real one: "
                "install it (Debian/Ubuntu: apt-get install redis-server) or run scripts/test, which does."
            )
        self.port = port or free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        # `--save ""` and `--appendonly no`: nothing written to disk, a restart starts empty.
        args = [executable, "--bind", LOOPBACK, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(workdir)]
        self.proc = ManagedProcess(args, workdir / f"redis-{self.port}.log", cwd=workdir)

    @property
    def running(self) -> bool:
        return self.proc.running

    def start(self) -> RedisServer:
        self.proc.start()
        self.proc.wait_ready(self.ping, START_TIMEOUT, f"redis-server on port {self.port} did not answer PING")
        return self

    def stop(self) -> None:
        self.proc.stop()

    def client(self) -> redis.Redis:
        """A fresh synchronous client; close it when done."""
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def flushdb(self) -> None:
        with self.client() as client:
            client.flushdb()
