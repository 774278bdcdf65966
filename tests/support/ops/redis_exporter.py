"""A real Redis exporter in front of a test's redis-server: what serves `redis_up` (job `redis`).

    with RedisExporter(redis_server.url, tmp_path) as exporter:
        ScrapeJob("redis", [exporter.address])

Debian's `prometheus-redis-exporter` (oliver006/redis_exporter) on a free loopback port. It
connects to Redis on every scrape, so a Redis that is stopped and restarted on the same port
shows as `redis_up 0` and back to 1.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.support import LOOPBACK, ManagedProcess, free_port

PACKAGE = "prometheus-redis-exporter"  # the Debian package and its binary
START_TIMEOUT = 15.0
_REDIS_UP = re.compile(r"^redis_up 1$", re.MULTILINE)


class RedisExporter:
    """`prometheus-redis-exporter` exporting the Redis at `redis_url`; use as a context manager."""

    def __init__(self, redis_url: str, workdir: Path) -> None:
        binary = shutil.which(PACKAGE)
        if binary is None:
            pytest.fail(f"{PACKAGE} is not installed: apt-get install {PACKAGE} (scripts/test installs it)", pytrace=False)
        self.address = f"{LOOPBACK}:{free_port()}"
        args = [binary, "--redis.addr", redis_url, "--web.listen-address", self.address]
        self.proc = ManagedProcess(args, Path(workdir) / "redis-exporter.log")

    def __enter__(self) -> RedisExporter:
        self.proc.start()
        try:
            self.proc.wait_ready(self.reports_redis_up, START_TIMEOUT, f"{PACKAGE} on {self.address} did not report redis_up 1")
        except BaseException:
            self.proc.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()

    def reports_redis_up(self) -> bool:
        """Whether its /metrics answers and says it reached Redis."""
        try:
            return _REDIS_UP.search(httpx.get(f"http://{self.address}/metrics", timeout=2).text) is not None
        except httpx.TransportError:
            return False
