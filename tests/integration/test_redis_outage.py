"""Redis stops mid-traffic: out of rotation, clear 503s instead of hangs, and full recovery when
Redis returns, without restarting the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from tests.support import (
    ManagedProcess,
    RedisServer,
    free_port,
    http_status,
    start_gateway,
    stdio_command,
    wait_until,
)
from tests.support.mcp_http import RawSession
from tests.support.mcp_ws import WsSession
from tests.support.paths import REPO_ROOT


def test_requests_needing_session_state_get_503_and_everything_recovers(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    gateway = start_gateway(
        {"redis_url": redis_url, "namespaces": {"n": {"backends": [{"name": "n-1", "command": stdio_command("n")}]}}}, tmp_path
    )
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
            refused = fresh.post(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
                }
            )
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


ONE_NAMESPACE = {"n": {"backends": [{"name": "n-1", "command": stdio_command("n")}]}}


def serve(redis_url: str, tmp_path: Path) -> tuple[list[str], str]:
    """The `serve` command line for one stdio namespace and `redis_url`, and its base URL."""
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"redis_url": redis_url, "namespaces": ONE_NAMESPACE}))
    port = free_port()
    return [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", str(port)], f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("password", ["wrong-password", None], ids=["wrong", "missing"])
def test_credentials_redis_refuses_stop_the_start_with_one_line(tmp_path: Path, password: str | None) -> None:
    """A wrong password never fixes itself: exit at once saying so, not 503s on every request."""
    guarded = RedisServer(tmp_path).start()
    try:
        with guarded.client() as client:
            client.config_set("requirepass", "right-password")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")} | {"MCP_GATEWAY_METRICS_PORT": "0"}
        if password:
            env["MCP_GATEWAY_REDIS_PASSWORD"] = password
        args, _ = serve(guarded.url, tmp_path)
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, cwd=REPO_ROOT)
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert line.startswith("config error: Redis refused the gateway's credentials (") and "check MCP_GATEWAY_REDIS_PASSWORD" in line
        assert "wrong-password" not in line
        # The right password: the same configuration serves.
        gateway = start_gateway(
            {"redis_url": guarded.url, "namespaces": ONE_NAMESPACE}, tmp_path, env={"MCP_GATEWAY_REDIS_PASSWORD": "right-password"}
        )
        try:
            RawSession(gateway.url).initialize()
        finally:
            gateway.proc.stop()
    finally:
        guarded.stop()


def test_a_redis_unreachable_at_start_up_is_waited_for(tmp_path: Path) -> None:
    """Unlike wrong credentials, an unreachable Redis may come back: the gateway starts, stays
    out of rotation, and turns ready by itself once Redis answers."""
    later = RedisServer(tmp_path)
    args, url = serve(later.url, tmp_path)
    proc = ManagedProcess(args, tmp_path / "gateway.log", env={"MCP_GATEWAY_METRICS_PORT": "0"}, cwd=REPO_ROOT).start()
    try:
        proc.wait_ready(lambda: http_status(f"{url}/healthz") == 200, 20, "gateway not alive without Redis")
        assert http_status(f"{url}/readyz") == 503
        later.start()
        try:
            wait_until(lambda: http_status(f"{url}/readyz") == 200, timeout=15, message="/readyz did not turn 200 once Redis answered")
            RawSession(url).initialize()
        finally:
            later.stop()
    finally:
        proc.stop()


def test_an_open_websocket_restores_its_session_after_redis_restarts(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    """The connection is the session: it cannot send `initialize` again, so when the stored record
    vanished with Redis the WebSocket edge writes it back from what the connection knows."""
    gateway = start_gateway(
        {
            "redis_url": redis_url,
            "session_ttl_seconds": 10,
            "namespaces": {"n": {"backends": [{"name": "n-1", "command": stdio_command("n")}]}},
        },
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
