"""Redis stops mid-traffic: out of rotation, clear 503s instead of hangs, and full recovery when
Redis returns, without restarting the gateway."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import redis

from tests.support import RedisServer, http_status, start_gateway, stdio_command, wait_until
from tests.support.mcp_http import RawSession
from tests.support.mcp_ws import WsSession


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


def test_an_open_websocket_restores_its_session_after_redis_restarts(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    """The connection is the session: it cannot send `initialize` again, so when the stored record
    vanished with Redis the WebSocket edge writes it back from what the connection knows."""
    gateway = start_gateway(
        {"redis_url": redis_url, "session_ttl_seconds": 10, "namespaces": {"n": {"backends": [{"name": "n-1", "command": stdio_command("n")}]}}},
        tmp_path,
    )
    echo = {"name": "n__echo", "arguments": {"text": "still here"}}
    try:
        with WsSession(gateway.url.replace("http://", "ws://") + "/ws") as ws:
            ws.initialize()
            assert ws.call("tools/call", echo)["result"]["content"][0]["text"] == "still here"
            store = redis.Redis.from_url(redis_url, decode_responses=True)
            key = next(iter(store.scan_iter("mcpgw:s:*")))
            store.close()
            redis_server.stop()
            redis_server.start()
            wait_until(lambda: http_status(f"{gateway.url}/readyz") == 200, timeout=15, message="/readyz did not recover")
            store = redis.Redis.from_url(redis_url, decode_responses=True)

            def answered_and_restored() -> bool:
                answer = ws.call("tools/call", echo)
                assert answer.get("result", {}).get("content", [{}])[0].get("text") == "still here", answer
                return bool(store.exists(key))

            # The connection refreshes its record every third of the TTL: within ~4 s.
            wait_until(answered_and_restored, timeout=15, message="the session record was not restored")
            stored = store.hgetall(key)
            store.close()
            assert stored["protocol_version"] == "2025-11-25" and stored["client_info"] == '{"name":"ws","version":"1"}'
            assert ws.call("ping")["result"] == {}
    finally:
        gateway.proc.stop()
