"""How long sessions live and how many: an expired session ends its upstream sessions (once,
whichever replica notices), and one principal cannot hold more than its cap of live sessions.
Every test runs with the sessions in memory and in Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import Backend, GatewayProc, start_backend, start_gateway, wait_until
from tests.support.mcp_http import ACCEPT, VERSION, RawSession

KEYS = {"alice": "key-alice-0123456789abcdef0123456789", "bob": "key-bob-0123456789abcdef0123456789ab"}


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Gateway settings that keep sessions in memory, or in the test's Redis."""
    return {} if request.param == "memory" else {"redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Backend]:
    backend = start_backend("web", tmp_path, "http")
    yield backend
    backend.proc.stop()


class KeySession(RawSession):
    def __init__(self, base: str, key: str):
        super().__init__(base)
        self.key = key

    def headers(self, **extra: str) -> dict[str, str]:
        return {**super().headers(**extra), "authorization": f"Bearer {self.key}"}


def upstream_alive(backend: Backend, upstream_session: str) -> bool:
    """Whether the backend still knows the upstream session (the SDK answers 404 once it ended)."""
    headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": VERSION, "mcp-session-id": upstream_session}
    response = httpx.post(backend.url, content=orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}), headers=headers, timeout=10)
    return response.status_code != 404


def start(config: dict[str, Any], tmp_path: Path, gateways: list[GatewayProc]) -> GatewayProc:
    gateway = start_gateway(config, tmp_path)
    gateways.append(gateway)
    return gateway


@pytest.fixture
def gateways() -> Iterator[list[GatewayProc]]:
    started: list[GatewayProc] = []
    yield started
    for gateway in started:
        gateway.proc.stop()


def test_an_expired_session_ends_its_upstream_session(
    state: dict[str, Any], web: Backend, tmp_path: Path, gateways: list[GatewayProc]
) -> None:
    """A client that goes away without DELETE leaves nothing open on the backend past its TTL."""
    gateway = start(
        {**state, "session_ttl_seconds": 10, "namespaces": {"web": {"backends": [{"name": "web-1", "url": web.url}]}}}, tmp_path, gateways
    )
    session = RawSession(gateway.url)
    session.initialize()
    headers = orjson.loads(session.call("tools/call", {"name": "web__headers", "arguments": {}})["result"]["content"][0]["text"])
    upstream = headers["mcp-session-id"]
    assert upstream_alive(web, upstream)
    wait_until(lambda: not upstream_alive(web, upstream), timeout=30, message="the upstream session outlived the expired gateway session")
    assert session.request("ping").status_code == 404


def test_each_expired_session_is_ended_by_one_replica(redis_url: str, web: Backend, tmp_path: Path, gateways: list[GatewayProc]) -> None:
    config = {"redis_url": redis_url, "session_ttl_seconds": 10, "namespaces": {"web": {"backends": [{"name": "web-1", "url": web.url}]}}}
    first, second = start(config, tmp_path, gateways), start(config, tmp_path, gateways)
    ids = []
    for gateway in (first, second, first):
        session = RawSession(gateway.url)
        session.initialize()
        session.call("tools/call", {"name": "web__echo", "arguments": {"text": "x"}})
        ids.append(session.session_id)

    def expiry_lines() -> list[str]:
        return [line for gw in (first, second) for line in gw.read_log().splitlines() if "ending its upstream sessions" in line]

    wait_until(
        lambda: all(any(sid in line for line in expiry_lines()) for sid in ids), timeout=30, message="expired sessions were not ended"
    )
    for sid in ids:
        assert sum(sid in line for line in expiry_lines()) == 1, expiry_lines()


def capped(state: dict[str, Any], web: Backend, cap: int) -> dict[str, Any]:
    return {
        **state,
        "max_sessions_per_principal": cap,
        "auth": {
            "mode": "api_key",
            "api_keys": [{"sha256": hashlib.sha256(key.encode()).hexdigest(), "subject": name} for name, key in KEYS.items()],
        },
        "namespaces": {"web": {"backends": [{"name": "web-1", "url": web.url}]}},
    }


def test_a_principal_over_its_session_cap_is_refused_and_others_are_not(
    state: dict[str, Any], web: Backend, tmp_path: Path, gateways: list[GatewayProc]
) -> None:
    gateway = start(capped(state, web, 2), tmp_path, gateways)

    def alice() -> KeySession:
        return KeySession(gateway.url, KEYS["alice"])

    first, second = alice(), alice()
    first.initialize()
    second.initialize()
    refused = alice().post(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
    )
    assert refused.status_code == 429 and "mcp-session-id" not in refused.headers
    error = refused.json()
    assert error["id"] == 5 and error["error"]["code"] == -32029, error
    assert "2 live sessions" in error["error"]["message"] and error["error"]["data"]["scope"] == "sessions"
    assert int(refused.headers["retry-after"]) == error["error"]["data"]["retryAfterSeconds"] >= 1

    KeySession(gateway.url, KEYS["bob"]).initialize()  # Another principal: unaffected.
    assert first.client.delete(first.url, headers=first.headers()).status_code == 204
    alice().initialize()  # A slot is free again.
    assert second.call("ping")["result"] == {}
