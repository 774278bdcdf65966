"""Several gateway replicas sharing one Redis serve the same clients interchangeably."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from tests.support import (
    GatewayProc,
    RedisServer,
    start_backend,
    start_gateway,
    wait_until,
)
from tests.support.mcp_http import RawSession, parse_sse


@pytest.fixture
def replicas(redis_url: str, tmp_path: Path) -> Iterator[tuple[GatewayProc, GatewayProc]]:
    backend = start_backend("shared", tmp_path, "http", resumable=True)
    config: dict[str, Any] = {
        "redis_url": redis_url,
        "session_ttl_seconds": 60,
        "namespaces": {"web": {"backends": [{"name": "web-1", "url": backend.url}]}},
    }
    first, second = start_gateway(config, tmp_path), start_gateway(config, tmp_path)
    yield first, second
    for proc in (first.proc, second.proc, backend.proc):
        proc.stop()


def stored_session(redis_url: str, session_id: str) -> dict[str, str]:
    return redis.Redis.from_url(redis_url, decode_responses=True).hgetall(f"mcpgw:s:{session_id}")


def test_a_session_started_on_one_replica_continues_on_another(replicas: tuple[GatewayProc, GatewayProc], redis_url: str) -> None:
    first, second = replicas
    on_first = RawSession(first.url)
    on_first.initialize()
    on_second = RawSession(second.url, session_id=on_first.session_id)

    answer = on_second.call("tools/call", {"name": "web__echo", "arguments": {"text": "from the other replica"}})
    assert answer["result"]["content"][0]["text"] == "from the other replica"
    binding = stored_session(redis_url, on_first.session_id or "")["up:web"]

    # Back on the first replica: the same upstream session is continued, not re-opened.
    assert on_first.call("tools/call", {"name": "web__whoami", "arguments": {}})["result"]["content"][0]["text"] == "shared"
    assert stored_session(redis_url, on_first.session_id or "")["up:web"] == binding


def test_only_what_the_gateway_needs_of_initialize_is_stored(replicas: tuple[GatewayProc, GatewayProc], redis_url: str) -> None:
    first, _ = replicas
    session = RawSession(first.url)
    client_info = {
        "name": "host",
        "title": "Host",
        "version": "1",
        "description": "d" * 2000,
        "icons": [{"src": "data:image/png;base64," + "A" * 4000}],
    }
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": client_info},
    }
    response = session.post(body)
    stored = stored_session(redis_url, response.headers["mcp-session-id"])
    assert orjson.loads(stored["client_info"]) == {"name": "host", "title": "Host", "version": "1"}
    assert orjson.loads(stored["client_capabilities"]) == {"sampling": {}}


def test_delete_on_one_replica_ends_the_session_everywhere(replicas: tuple[GatewayProc, GatewayProc]) -> None:
    first, second = replicas
    on_first = RawSession(first.url)
    on_first.initialize()
    on_second = RawSession(second.url, session_id=on_first.session_id)
    assert on_second.call("ping")["result"] == {}

    assert on_first.client.delete(on_first.url, headers=on_first.headers()).status_code == 204
    assert on_second.request("ping").status_code == 404
    assert on_second.request("tools/list").status_code == 404


def test_sessions_are_counted_across_replicas(replicas: tuple[GatewayProc, GatewayProc]) -> None:
    first, second = replicas
    for gateway in (first, second):
        RawSession(gateway.url).initialize()
    for gateway in (first, second):
        payload = httpx.get(f"{gateway.url}/health").json()
        assert payload["redis"] == "connected"
        assert payload["sessions_active"] == 2


def test_a_stream_resumes_on_another_replica_with_last_event_id(replicas: tuple[GatewayProc, GatewayProc]) -> None:
    first, second = replicas
    on_first = RawSession(first.url)
    on_first.initialize()
    body = {
        "jsonrpc": "2.0",
        "id": 41,
        "method": "tools/call",
        "params": {"name": "web__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": 7}},
    }
    response = on_first.client.post(on_first.url, content=orjson.dumps(body), headers=on_first.headers())
    events = parse_sse(response.text)
    ids = [event["id"] for event in events if "id" in event]
    assert ids and all(event_id.startswith("web:") for event_id in ids), events
    priming = events[0]
    assert priming["data"] is None and priming["retry"] == "1500"  # The backend's hint reaches the client.
    first_progress = next(e for e in events if e["data"] and e["data"].get("method") == "notifications/progress")

    # The client lost the stream after the first progress event; it resumes on the other replica.
    on_second = RawSession(second.url, session_id=on_first.session_id)
    replayed: list[dict[str, Any]] = []
    headers = on_second.headers(last_event_id=first_progress["id"])
    with on_second.client.stream("GET", on_second.url, headers=headers) as stream:
        assert stream.status_code == 200
        buffer = ""
        for chunk in stream.iter_text():
            buffer += chunk
            replayed = [e["data"] for e in parse_sse(buffer) if e["data"]]
            if any(m.get("id") == 41 for m in replayed):
                break
    progress = [m["params"]["progress"] for m in replayed if m.get("method") == "notifications/progress"]
    assert progress == [2, 3]
    assert replayed[-1]["id"] == 41 and replayed[-1]["result"]["content"][0]["text"] == "done"


def test_unknown_last_event_id_is_rejected(replicas: tuple[GatewayProc, GatewayProc]) -> None:
    session = RawSession(replicas[0].url)
    session.initialize()
    response = session.client.get(session.url, headers=session.headers(last_event_id="nowhere:1"))
    assert response.status_code == 400


def test_sessions_expire_after_their_ttl(redis_url: str, redis_server: RedisServer, tmp_path: Path) -> None:
    gateway = start_gateway(
        {
            "redis_url": redis_url,
            "session_ttl_seconds": 10,
            "namespaces": {"x": {"backends": [{"name": "x-1", "url": "http://127.0.0.1:9/mcp"}]}},
        },
        tmp_path,
    )
    try:
        session = RawSession(gateway.url)
        session.initialize()
        key = f"mcpgw:s:{session.session_id}"
        client = redis_server.client()
        # The index's score is the expiry; the hash stays a little longer, for the expiry sweep.
        assert 0 < (client.zscore("mcpgw:sessions", session.session_id or "") or 0) - time.time() <= 10
        assert client.ttl(key) > 10
        client.zadd("mcpgw:sessions", {session.session_id: time.time()})  # Fast-forward the clock.
        assert session.request("ping").status_code == 404
        wait_until(lambda: not client.exists(key), timeout=15, message="the expired session was not swept")
    finally:
        gateway.proc.stop()
