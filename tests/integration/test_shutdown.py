"""SIGTERM with requests in flight: out of rotation at once, nothing in flight dropped, a proper
WebSocket close, and an exit within the drain timeout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import orjson
import websockets

from tests.support import start_backend, start_gateway, wait_until_async
from tests.support.mcp_http import ACCEPT, VERSION

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def slow_call(request_id: int, seconds: float) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "web__slow", "arguments": {"seconds": seconds}}}


async def test_sigterm_drains_in_flight_work_then_exits(tmp_path: Path) -> None:
    backend = start_backend("web", tmp_path, "http", json_response=True)
    gateway = start_gateway(
        {"drain_timeout_seconds": 10, "namespaces": {"web": {"backends": [{"name": "web-1", "url": backend.url}]}}}, tmp_path
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            init = await client.post("/mcp", content=orjson.dumps(INIT), headers={"accept": ACCEPT, "content-type": "application/json"})
            headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-session-id": init.headers["mcp-session-id"]}
            ws = await websockets.connect(gateway.url.replace("http", "ws") + "/ws", subprotocols=["mcp"])  # type: ignore[list-item]
            await ws.send(json.dumps(INIT))
            await ws.recv()

            http_calls = [
                asyncio.create_task(client.post("/mcp", content=orjson.dumps(slow_call(i, 1.5)), headers=headers)) for i in range(1, 4)
            ]
            await ws.send(json.dumps(slow_call(99, 1.5)))
            await wait_until_async(_in_flight(client, 4), timeout=5, message="calls never reached the gateway")

            signalled = time.monotonic()
            os.kill(gateway.proc.pid or 0, signal.SIGTERM)
            await wait_until_async(_not_ready(client), timeout=2, message="/readyz did not turn 503 at once")

            for call in http_calls:
                answer = (await call).json()
                assert answer["result"]["content"][0]["text"] == "done", answer
            assert json.loads(await ws.recv())["result"]["content"][0]["text"] == "done"
            await ws.wait_closed()
            assert ws.close_code == 1001

            await wait_until_async(lambda: not gateway.proc.running, timeout=10, message="gateway did not exit")
            assert time.monotonic() - signalled < 10
            assert "draining" in gateway.read_log()
    finally:
        gateway.proc.stop()
        backend.proc.stop()


def _in_flight(client: httpx.AsyncClient, count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return (await client.get("/readyz")).json().get("in_flight", 0) >= count

    return check


def _not_ready(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return (await client.get("/readyz")).status_code == 503

    return check
