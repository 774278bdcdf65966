"""Helpers shared by the breaker, health-check and rate-limit tests: a sick backend process, the
metrics scrape, calls and their outcomes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import LOOPBACK, ManagedProcess, free_port, http_status
from tests.support.mcp_http import RawSession, messages
from tests.support.paths import SERVERS

T = TypeVar("T")
FLAKY = SERVERS / "flaky.py"


@dataclass
class Flaky:
    """tests/servers/flaky.py: opens sessions and answers ping; HTTP 500 for everything else."""

    url: str
    proc: ManagedProcess

    def counts(self) -> dict[str, int]:
        return httpx.get(self.url.removesuffix("/mcp") + "/counts", timeout=5).json()


def start_flaky(workdir: Path, name: str = "flaky") -> Flaky:
    port = free_port()
    proc = ManagedProcess([sys.executable, str(FLAKY), "--port", str(port), "--name", name], workdir / f"flaky-{port}.log").start()
    url = f"http://{LOOPBACK}:{port}/mcp"
    try:
        proc.wait_ready(lambda: http_status(url.removesuffix("/mcp") + "/counts") == 200, 15, f"{name} did not start")
    except BaseException:
        proc.stop()
        raise
    return Flaky(url, proc)


def kill(proc: ManagedProcess) -> None:
    """SIGKILL, as a crash would (no goodbye to open connections), then reap."""
    assert proc.pid is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.stop()


def new_session(base: str) -> RawSession:
    session = RawSession(base)
    session.initialize()
    return session


def call_tool(session: RawSession, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """The final message answering a tools/call (an error object included)."""
    response = session.request("tools/call", {"name": name, "arguments": arguments or {}})
    assert response.status_code == 200, response.text
    return messages(response)[-1]


def text_of(message: dict[str, Any]) -> str:
    assert "result" in message and not message["result"].get("isError"), message
    return message["result"]["content"][0]["text"]


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the gateway's Prometheus endpoint, keyed by (name, labels)."""
    text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=5).text
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample's value (labels must match exactly those given, plus any others), or None."""
    wanted = set(labels.items())
    for (sample, sample_labels), value in scrape(port).items():
        if sample == name and wanted <= sample_labels:
            return value
    return None


def metrics_env() -> tuple[int, dict[str, str]]:
    """A free port for the gateway's /metrics and the environment that sets it."""
    port = free_port()
    return port, {"MCP_GATEWAY_METRICS_PORT": str(port)}


def start_together(*starts: Callable[[], T]) -> list[T]:
    """Start independent processes side by side (each start blocks until its process serves)."""
    with ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
    return [future.result() for future in futures]
