"""Redis stops mid-traffic: out of rotation, clear 503s instead of hangs, and full recovery when
Redis returns, without restarting the gateway."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support import RedisServer, http_status, start_gateway, stdio_command, wait_until
from tests.support.mcp_http import RawSession


def test_requests_needing_session_state_get_503_and_everything_recovers(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    gateway = start_gateway({"redis_url": redis_url, "namespaces": {"n": {"backends": [{"name": "n-1", "command": stdio_command("n")}]}}}, tmp_path)
    try:
        session = RawSession(gateway.url)
        session.initialize()
        assert session.call("tools/call", {"name": "n__echo", "arguments": {"text": "before"}})["result"]["content"][0]["text"] == "before"

        redis_server.stop()
        try:
            wait_until(lambda: http_status(f"{gateway.url}/readyz") == 503, timeout=10, message="/readyz stayed 200 without Redis")
            started = time.monotonic()
            response = session.request("tools/list")
            assert time.monotonic() - started < 5  # A clear answer, not a hang.
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == -32054
            fresh = RawSession(gateway.url)
            refused = fresh.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
            assert refused.status_code == 503
            health = httpx.get(f"{gateway.url}/health")
            assert health.status_code == 503 and health.json()["redis"] == "disconnected"
        finally:
            redis_server.start()

        wait_until(lambda: http_status(f"{gateway.url}/readyz") == 200, timeout=15, message="/readyz did not recover")
        # The restarted Redis is empty (no persistence in the test): the old session is gone (404,
        # so the client re-initializes) and a new one works end to end.
        assert session.request("ping").status_code == 404
        again = RawSession(gateway.url)
        again.initialize()
        assert again.call("tools/call", {"name": "n__echo", "arguments": {"text": "after"}})["result"]["content"][0]["text"] == "after"
    finally:
        gateway.proc.stop()
