"""Active health checks: every replica is pinged on an interval, and `/health`, the
`mcp_gateway_backend_health` gauge and replica choice follow what the pings find, with real
backend processes killed and restarted and no client traffic at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.backends.http import HttpBackend
from app.config import BackendConfig, HealthCheckConfig
from app.pipeline.breaker import CircuitBreaker, State
from app.pipeline.health_checks import HealthChecker
from app.pipeline.replica import Replica
from tests.support import (
    Backend,
    GatewayProc,
    http_status,
    stdio_command,
    tcp_accepts,
    wait_until,
)
from tests.support.guard import kill, metric, metrics_env, start_together
from tests.support.process import stdio_backend_pids

FAST_HEALTH = {"interval_seconds": 0.3, "timeout_seconds": 2}


def open_circuit(breaker: CircuitBreaker) -> None:
    """Open a closed circuit the way calls do: `failure_threshold` failures in a row."""
    for _ in range(breaker.settings.failure_threshold):
        permit = breaker.acquire()
        assert permit is not None
        permit.failure()
    assert breaker.state is State.OPEN


def health(gateway: GatewayProc) -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/health", timeout=5).json()


def test_health_and_the_gauge_follow_replicas_going_down_and_coming_back(
    backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]
) -> None:
    solo, pair_ws, pair_http = start_together(lambda: backend("solo"), lambda: backend("pair-ws", "ws"), lambda: backend("pair-http"))
    metrics_port, env = metrics_env()
    gw = gateway(
        {
            "health_checks": FAST_HEALTH,
            "namespaces": {
                "solo": {"backends": [{"name": "solo-1", "url": solo.url}]},
                "pair": {"backends": [{"name": "pair-ws", "url": pair_ws.url}, {"name": "pair-http", "url": pair_http.url}]},
                "local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]},
            },
        },
        env,
    )

    def gauge(ns: str, name: str) -> float | None:
        return metric(metrics_port, "mcp_gateway_backend_health", namespace=ns, backend=name)

    wait_until(lambda: health(gw)["status"] == "healthy", timeout=10, message="all healthy at first")
    assert [gauge("solo", "solo-1"), gauge("pair", "pair-ws"), gauge("pair", "pair-http"), gauge("local", "local-1")] == [1, 1, 1, 1]

    kill(solo.proc)
    kill(pair_ws.proc)
    # No client calls: only the pings notice.
    report = wait_until(
        lambda: (r := health(gw))["backends"] == {"solo": "unhealthy", "pair": "degraded", "local": "healthy"} and r,
        timeout=10,
        message=lambda: f"health after the kills: {health(gw)}",
    )
    assert report["status"] == "degraded"  # One namespace with no healthy replica: degraded, still 200.
    assert httpx.get(f"{gw.url}/health").status_code == 200
    assert [gauge("solo", "solo-1"), gauge("pair", "pair-ws"), gauge("pair", "pair-http")] == [0, 0, 1]

    solo.proc.start()
    pair_ws.proc.start()
    solo.proc.wait_ready(lambda: http_status(solo.url) is not None, 15, "solo restarted")
    pair_ws.proc.wait_ready(lambda: tcp_accepts("127.0.0.1", int(pair_ws.url.rsplit(":", 1)[1].split("/")[0])), 15, "pair-ws restarted")
    wait_until(lambda: health(gw)["status"] == "healthy", timeout=10, message=lambda: f"health after the restarts: {health(gw)}")
    assert [gauge("solo", "solo-1"), gauge("pair", "pair-ws")] == [1, 1]
    log = gw.read_log()
    assert '"message":"backend unhealthy' in log and '"message":"backend healthy"' in log


def test_a_shared_connection_is_pinged_on_the_connection_and_a_dead_child_is_restarted(gateway: Callable[..., GatewayProc]) -> None:
    import os
    import signal

    gw = gateway(
        {"health_checks": FAST_HEALTH, "namespaces": {"local": {"backends": [{"name": "local-1", "command": stdio_command("pinged")}]}}}
    )
    first = wait_until(
        lambda: (pids := stdio_backend_pids("pinged", gw.proc.pid or -1)) and len(pids) == 1 and pids[0], timeout=10, message="stdio child"
    )
    os.kill(first, signal.SIGKILL)
    # The next ping finds the connection gone and reconnects: a new child, with no client call.
    replacement = wait_until(
        lambda: (pids := [p for p in stdio_backend_pids("pinged", gw.proc.pid or -1) if p != first]) and pids[0],
        timeout=10,
        message="stdio child restarted by the health check",
    )
    assert replacement != first
    wait_until(lambda: health(gw)["backends"] == {"local": "healthy"}, timeout=10, message="healthy again")


async def test_an_http_health_session_the_backend_forgot_is_reopened(backend: Callable[..., Backend]) -> None:
    server = backend("forgetful")
    replica = Replica(HttpBackend("ns", BackendConfig(name="forgetful-1", url=server.url)), CircuitBreaker("ns", "forgetful-1"))
    checker = HealthChecker([replica], HealthCheckConfig(interval_seconds=60, timeout_seconds=5))
    probe = checker.probes[0]
    try:
        assert await checker.check(probe) and replica.healthy is True
        first = probe.session_id
        assert first
        # The backend ends the session (as a restart or its own expiry would): the next ping
        # gets 404 and the checker opens a new session instead of calling the replica sick.
        headers = {"mcp-session-id": first, "mcp-protocol-version": probe.protocol_version or ""}
        async with httpx.AsyncClient() as client:
            assert (await client.delete(server.url, headers=headers)).status_code in (200, 204)
        assert await checker.check(probe) and replica.healthy is True
        assert probe.session_id and probe.session_id != first
    finally:
        await checker.close()
        await replica.client.close()


async def test_a_ping_probes_a_half_open_circuit(backend: Callable[..., Backend], tmp_path: Path) -> None:
    """While a circuit is not closed the ping is its probe: success closes it, failure re-opens it;
    while it is closed a failed ping does not count against it."""
    server = backend("probed")
    replica = Replica(HttpBackend("ns", BackendConfig(name="probed-1", url=server.url)), CircuitBreaker("ns", "probed-1"))
    checker = HealthChecker([replica], HealthCheckConfig(interval_seconds=60, timeout_seconds=5))
    probe = checker.probes[0]
    clock = [0.0]
    replica.breaker.clock = lambda: clock[0]
    try:
        open_circuit(replica.breaker)
        assert await checker.check(probe)
        assert replica.breaker.state is State.OPEN  # Cooling down: the ping does not probe yet.
        clock[0] += replica.breaker.settings.cooldown_seconds
        assert await checker.check(probe)
        assert replica.breaker.state is State.CLOSED

        kill(server.proc)
        for _ in range(replica.breaker.settings.failure_threshold + 1):
            assert not await checker.check(probe)
        assert replica.breaker.state is State.CLOSED and replica.healthy is False
        open_circuit(replica.breaker)
        clock[0] += replica.breaker.settings.cooldown_seconds
        assert not await checker.check(probe)
        assert replica.breaker.raw_state is State.OPEN
    finally:
        await checker.close()
        await replica.client.close()


@pytest.mark.parametrize("enabled", [False])
def test_health_check_settings_are_validated(enabled: bool) -> None:
    from app.config import ConfigError, parse_config

    base = {"namespaces": {"a": {"backends": [{"name": "a-1", "url": "http://127.0.0.1:1/mcp"}]}}}
    assert parse_config({**base, "health_checks": {"enabled": enabled}}).health_checks.enabled is enabled
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "health_checks": {"interval_seconds": 0, "timeout_seconds": "soon", "every": 3}})
    problems = "\n".join(caught.value.problems)
    for key in ("health_checks.interval_seconds", "health_checks.timeout_seconds", "health_checks.every: unknown key"):
        assert key in problems, problems
