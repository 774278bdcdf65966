"""Fixtures shared by every tier: Redis, MCP backends and the gateway as real processes on loopback,
and the tier markers.

Each test is marked with its tier (`unit`, `integration`, `ops`) from the folder it sits in, so
`scripts/test -m unit` runs the in-process tier alone. The process factories are synchronous (they block while a process starts); in an async test call
them before opening clients, or through `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    Backend,
    GatewayProc,
    ManagedProcess,
    RedisServer,
    start_backend,
    start_gateway,
)
from tests.support.backends import NetworkTransport

TIERS = ("unit", "integration", "ops")
_TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier named by its folder under tests/ (markers are in pyproject.toml)."""
    for item in items:
        path = item.path.resolve()
        if _TESTS_DIR in path.parents and (tier := path.relative_to(_TESTS_DIR).parts[0]) in TIERS:
            item.add_marker(tier)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Remember each phase's report on the test, so fixtures can tell whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = (getattr(request.node, f"report_{when}", None) for when in ("setup", "call"))
    return any(report is not None and report.failed for report in reports)


def _stop_all(request: pytest.FixtureRequest, procs: list[ManagedProcess]) -> None:
    """Stop the processes; when the test failed, print their logs into its report."""
    for proc in reversed(procs):
        proc.stop()
        if _failed(request):
            print(proc.describe())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session: `.url`, `.port`, `.stop()`, `.start()` (same port)."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis URL, running and with an empty database for this test."""
    if not redis_server.running:  # an earlier test stopped it and failed before restarting
        redis_server.start()
    redis_server.flushdb()
    return redis_server.url


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """`backend(name, transport="http", **opts) -> Backend`: an everything-server, stopped after the test.

    `opts` are everything.py's flags as keywords: json_response, stateless, resumable,
    page_size, extra_tools.
    """
    procs: list[ManagedProcess] = []

    def start(name: str, transport: NetworkTransport = "http", **opts: object) -> Backend:
        started = start_backend(name, tmp_path, transport, **opts)
        procs.append(started.proc)
        return started

    yield start
    _stop_all(request, procs)


@pytest.fixture
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., GatewayProc]]:
    """`gateway(config, env=None) -> GatewayProc`: a gateway process, ready (/readyz 200), stopped after the test."""
    procs: list[ManagedProcess] = []

    def start(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> GatewayProc:
        started = start_gateway(config, tmp_path, env)
        procs.append(started.proc)
        return started

    yield start
    _stop_all(request, procs)
