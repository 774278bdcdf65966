"""Rate limits: per client address, per principal and per namespace, over HTTP and WebSocket,
shared by replicas through Redis, failing open while Redis is down and resuming by itself.

Limits in these tests are per day: the in-memory storage aligns its windows to the clock, and a
per-minute window could roll over in the middle of a test and hand out a few more requests."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from app.config import ConfigError, load_config, parse_config
from tests.support import GatewayProc, RedisServer, stdio_command, wait_until
from tests.support.guard import (
    Flaky,
    call_tool,
    metric,
    metrics_env,
    new_session,
    start_flaky,
    text_of,
)
from tests.support.mcp_http import RawSession

LOCAL = {"backends": [{"name": "local-1", "command": stdio_command("local")}]}


METERED = {"free": LOCAL, "metered": {"backends": [{"name": "metered-1", "command": stdio_command("metered")}]}}


def limited(served: dict[str, Any] | None = None, **rate_limits: Any) -> dict[str, Any]:
    """A gateway config serving `served` (default: namespace `free`) with only these limits."""
    return {
        "rate_limits": {"per_principal": None, "per_ip": None, **rate_limits},
        "health_checks": {"enabled": False},
        "namespaces": served or {"free": LOCAL},
    }


def assert_rate_limited(response: Any, scope: str) -> int:
    """A 429 carrying `Retry-After` and the JSON-RPC error with the same `retryAfterSeconds`."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    error = response.json()["error"]
    assert error["code"] == -32029 and scope in error["message"], error
    assert error["data"]["retryAfterSeconds"] == retry_after and retry_after >= 1, error
    return retry_after


# -- configuration -----------------------------------------------------------------------------------


def test_rates_are_validated_with_their_keys() -> None:
    base = {"namespaces": {"a": {"backends": [{"name": "a-1", "url": "http://127.0.0.1:1/mcp"}]}}}
    config = parse_config(base)
    assert config.rate_limits.enabled and config.rate_limits.per_principal == "600/minute"  # Generous defaults.
    assert parse_config({**base, "rate_limits": {"per_ip": "10 per second", "namespaces": {"a": "5/hour"}}}).rate_limits.namespaces == {
        "a": "5/hour"
    }
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "rate_limits": {"per_principal": "600/fortnight", "per_ip": "0/minute", "namespaces": {"a": "lots"}}})
    problems = caught.value.problems
    assert any(p.startswith("rate_limits.per_principal: '600/fortnight' is not a rate") for p in problems), problems
    assert any(p.startswith("rate_limits.per_ip: '0/minute' is not a rate") for p in problems), problems
    assert any(p.startswith("rate_limits.namespaces.a: 'lots' is not a rate") for p in problems), problems
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "rate_limits": {"namespaces": {"nowhere": "5/minute"}}})
    assert "rate_limits.namespaces: no such namespace: 'nowhere'" in "\n".join(caught.value.problems)


def test_the_default_per_ip_budget_applies_only_where_it_guards_something() -> None:
    base = {"namespaces": {"a": {"backends": [{"name": "a-1", "url": "http://127.0.0.1:1/mcp"}]}}}
    keys = {"mode": "api_key", "api_keys": [{"sha256": "0" * 64, "subject": "someone"}]}
    assert load_config(environ={}).rate_limits.per_ip is None  # The embedded default: the local user.
    assert parse_config(base).rate_limits.per_ip is None  # Loopback, no authentication.
    assert parse_config({**base, "auth": keys}).rate_limits.per_ip == "1200/minute"
    assert parse_config({**base, "host": "0.0.0.0", "auth": keys}).rate_limits.per_ip == "1200/minute"
    assert parse_config({**base, "rate_limits": {"per_ip": "6/day"}}).rate_limits.per_ip == "6/day"  # Set: applies.


LOCAL_LOOP = 1300  # More than the per-IP default of 1,200 a minute.


def test_a_local_loop_on_the_default_configuration_is_not_rate_limited(gateway: Callable[..., GatewayProc]) -> None:
    """The quick start's SDK loop: thousands of calls a minute from the machine's own user."""
    gw = gateway({"health_checks": {"enabled": False}, "namespaces": {"free": LOCAL}})
    with websocket(gw) as client:
        refused = [answer for answer in (client.request("ping") for _ in range(LOCAL_LOOP)) if "error" in answer]
    assert refused == []


# -- HTTP ----------------------------------------------------------------------------------------------


def test_http_over_a_limit_is_429_with_retry_after_and_namespaces_have_their_own(gateway: Callable[..., GatewayProc]) -> None:
    gw = gateway(limited(METERED, per_ip="6/day", namespaces={"metered": "2/day"}))
    session = new_session(gw.url)  # 1 request (initialize)
    assert text_of(call_tool(session, "metered__echo", {"text": "a"})) == "a"  # 2
    assert text_of(call_tool(session, "metered__echo", {"text": "b"})) == "b"  # 3
    assert_rate_limited(session.request("tools/call", {"name": "metered__echo", "arguments": {"text": "c"}}), "namespace 'metered'")  # 4
    # The namespace's budget is spent, not the caller's: other namespaces still answer.
    assert text_of(call_tool(session, "free__echo", {"text": "d"})) == "d"  # 5
    assert session.call("ping")["result"] == {}  # 6
    response = session.request("tools/call", {"name": "free__echo", "arguments": {"text": "e"}})
    retry_after = assert_rate_limited(response, "client address")
    assert response.json()["id"] == session.next_id
    assert retry_after <= 24 * 3600
    # Notifications spend the same budgets: over the limit, 429 too (with no id to carry).
    refused = session.post({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}})
    assert assert_rate_limited(refused, "client address") >= 1 and refused.json()["id"] is None


class KeySession(RawSession):
    def __init__(self, base: str, key: str):
        super().__init__(base)
        self.key = key

    def headers(self, **extra: str) -> dict[str, str]:
        return {**super().headers(**extra), "authorization": f"Bearer {self.key}"}


def test_principals_have_their_own_budgets_and_the_gauge_shows_what_is_left(gateway: Callable[..., GatewayProc]) -> None:
    keys = {"alice": "key-alice-0123456789abcdef0123456789", "bob": "key-bob-0123456789abcdef0123456789ab"}
    config = limited(per_principal="3/day", per_ip="100/day")
    config["telemetry"] = {"user_label": "raw"}  # the gauge's `user` is the subject itself
    config["auth"] = {
        "mode": "api_key",
        "api_keys": [{"sha256": hashlib.sha256(key.encode()).hexdigest(), "subject": name} for name, key in keys.items()],
    }
    metrics_port, env = metrics_env()
    gw = gateway(config, env)
    alice, bob = KeySession(gw.url, keys["alice"]), KeySession(gw.url, keys["bob"])
    alice.initialize()
    assert metric(metrics_port, "mcp_gateway_rate_limit_remaining", user="alice") == 2
    assert text_of(call_tool(alice, "free__echo", {"text": "1"})) == "1"
    assert text_of(call_tool(alice, "free__echo", {"text": "2"})) == "2"
    assert metric(metrics_port, "mcp_gateway_rate_limit_remaining", user="alice") == 0
    assert_rate_limited(alice.request("tools/call", {"name": "free__echo", "arguments": {"text": "3"}}), "principal")
    # The same address, another principal: a budget of its own.
    bob.initialize()
    assert text_of(call_tool(bob, "free__echo", {"text": "bob"})) == "bob"
    assert metric(metrics_port, "mcp_gateway_rate_limit_remaining", user="bob") == 1
    assert metric(metrics_port, "mcp_gateway_rate_limit_remaining", user="alice") == 0


def test_a_jwt_with_an_api_keys_subject_has_a_budget_of_its_own(gateway: Callable[..., GatewayProc]) -> None:
    """The principal budget belongs to the full identity (credential type, issuer, subject)."""
    import jwt

    key, secret = "key-bot-0123456789abcdef0123456789ab", "test-secret-that-is-long-enough-for-hs256"
    config = limited(per_principal="2/day", per_ip="100/day")
    config["auth"] = {
        "mode": ["jwt", "api_key"],
        "jwt": {"algorithms": ["HS256"], "secret_env": "TEST_JWT_SECRET"},
        "api_keys": [{"sha256": hashlib.sha256(key.encode()).hexdigest(), "subject": "bot"}],
    }
    gw = gateway(config, {"TEST_JWT_SECRET": secret})
    token = jwt.encode({"sub": "bot", "scope": "mcp:*", "exp": int(time.time()) + 300}, secret, algorithm="HS256")
    by_key, by_token = KeySession(gw.url, key), KeySession(gw.url, token)
    by_key.initialize()
    assert by_key.call("ping")["result"] == {}
    assert_rate_limited(by_key.request("ping"), "principal")
    by_token.initialize()
    assert by_token.call("ping")["result"] == {}


# -- WebSocket -----------------------------------------------------------------------------------------


class WsClient:
    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.ids = itertools.count(1)

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.ws.send(orjson.dumps(message).decode())
        while True:
            answer = orjson.loads(self.ws.recv(timeout=15))
            if answer.get("id") == request_id:
                return answer

    def initialize(self) -> dict[str, Any]:
        answer = self.request(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        self.ws.send(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).decode())
        return answer

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        return self.request("tools/call", {"name": tool, "arguments": arguments})


@contextmanager
def websocket(gw: GatewayProc) -> Iterator[WsClient]:
    with connect(gw.url.replace("http://", "ws://") + "/ws", subprotocols=["mcp"], open_timeout=10) as ws:  # type: ignore[list-item]
        client = WsClient(ws)
        assert "result" in client.initialize()
        yield client


def test_websocket_over_a_limit_gets_a_json_rpc_error_and_the_connection_goes_on(gateway: Callable[..., GatewayProc]) -> None:
    gw = gateway(limited(METERED, namespaces={"metered": "2/day"}))
    with websocket(gw) as client:
        assert text_of(client.call("metered__echo", text="1")) == "1"
        assert text_of(client.call("metered__echo", text="2")) == "2"
        refused = client.call("metered__echo", text="3")
        error = refused["error"]
        assert error["code"] == -32029 and "namespace 'metered'" in error["message"], refused
        assert isinstance(error["data"]["retryAfterSeconds"], int) and error["data"]["retryAfterSeconds"] >= 1
        # Same connection, still open and serving.
        assert text_of(client.call("free__echo", text="still open")) == "still open"
        assert client.request("ping")["result"] == {}


# -- notifications -------------------------------------------------------------------------------------

CANCEL = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99, "reason": "test"}}
FLOOD = 20


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[Flaky]:
    """A Streamable HTTP backend that counts what it receives (and fails every tool call)."""
    backend = start_flaky(tmp_path)
    yield backend
    backend.proc.stop()


def sick(flaky: Flaky) -> dict[str, Any]:
    return {"sick": {"backends": [{"name": "sick-1", "url": flaky.url}]}}


def forwarded(flaky: Flaky) -> int:
    return flaky.counts().get("notifications/cancelled", 0)


def test_http_notifications_spend_the_budget_and_over_it_get_429_and_are_not_forwarded(
    gateway: Callable[..., GatewayProc], flaky: Flaky
) -> None:
    metrics_port, env = metrics_env()
    gw = gateway(limited(sick(flaky), per_ip="4/day"), env)
    session = new_session(gw.url)  # 1 (initialize; notifications/initialized completes it for free)
    assert "error" in call_tool(session, "sick__anything")  # 2: the upstream session now exists
    assert session.post(CANCEL).status_code == 202  # 3
    assert session.post(CANCEL).status_code == 202  # 4
    wait_until(lambda: forwarded(flaky) == 2, 10, "the allowed notifications reach the backend")
    for _ in range(FLOOD):
        assert_rate_limited(session.post(CANCEL), "client address")
    assert forwarded(flaky) == 2
    dropped = metric(metrics_port, "mcp_gateway_notifications_dropped_total", protocol="http", reason="rate_limited")
    assert dropped == FLOOD


def test_websocket_notifications_over_the_limit_are_dropped_silently_and_counted(gateway: Callable[..., GatewayProc], flaky: Flaky) -> None:
    metrics_port, env = metrics_env()
    gw = gateway(limited(sick(flaky), per_ip="3/day"), env)
    with websocket(gw) as client:  # 1
        assert "error" in client.call("sick__anything")  # 2
        for _ in range(1 + FLOOD):  # 3, then over the limit
            client.ws.send(orjson.dumps(CANCEL).decode())
        ping = {"jsonrpc": "2.0", "id": "after-flood", "method": "ping"}
        client.ws.send(orjson.dumps(ping).decode())
        # Nothing answers a notification: the next frame is the (refused) ping's answer.
        answer = orjson.loads(client.ws.recv(timeout=15))
        assert answer["id"] == "after-flood" and answer["error"]["code"] == -32029, answer
    assert forwarded(flaky) == 1
    dropped = metric(metrics_port, "mcp_gateway_notifications_dropped_total", protocol="websocket", reason="rate_limited")
    assert dropped == FLOOD


# -- shared budgets and Redis --------------------------------------------------------------------------


def test_replicas_on_one_redis_share_one_budget(redis_url: str, gateway: Callable[..., GatewayProc]) -> None:
    config = {**limited(per_ip="6/day"), "redis_url": redis_url}
    first, second = gateway(config), gateway(config)
    on_first = new_session(first.url)  # 1
    assert text_of(call_tool(on_first, "free__echo", {"text": "a"})) == "a"  # 2
    on_second = RawSession(second.url, session_id=on_first.session_id)
    assert text_of(call_tool(on_second, "free__echo", {"text": "b"})) == "b"  # 3
    other = new_session(second.url)  # 4
    assert text_of(call_tool(other, "free__echo", {"text": "c"})) == "c"  # 5
    assert text_of(call_tool(on_first, "free__echo", {"text": "d"})) == "d"  # 6
    for session in (on_first, on_second, other):
        assert_rate_limited(session.request("tools/call", {"name": "free__echo", "arguments": {"text": "x"}}), "client address")


def test_redis_down_fails_open_and_limiting_resumes_when_it_returns(
    redis_server: RedisServer, redis_url: str, gateway: Callable[..., GatewayProc]
) -> None:
    metrics_port, env = metrics_env()
    gw = gateway({**limited(per_ip="3/day"), "redis_url": redis_url}, env)
    # A WebSocket keeps its session in the connection: its calls need no Redis, only the limiter does.
    with websocket(gw) as client:  # 1 (initialize)
        assert text_of(client.call("free__echo", text="2")) == "2"
        assert text_of(client.call("free__echo", text="3")) == "3"
        assert client.call("free__echo", text="4")["error"]["code"] == -32029

        redis_server.stop()
        try:
            started = time.monotonic()
            for i in range(10):  # Over the limit, but the limiter cannot count: every call passes.
                assert text_of(client.call("free__echo", text=f"open {i}")) == f"open {i}"
            assert time.monotonic() - started < 5  # Failing open is quick, not a wait per request.
            assert "rate limiting fails open" in gw.read_log()
            failopen = metric(metrics_port, "mcp_gateway_rate_limit_failopen_total")
            assert failopen is not None and failopen >= 10, failopen
        finally:
            redis_server.start()  # Empty again: the budget starts over.

        def refused_again() -> bool:
            return "error" in client.call("free__echo", text="again")

        # Within the back-off the limiter finds Redis again; 3 requests later it refuses.
        wait_until(refused_again, timeout=15, interval=0.2, message="rate limiting resumed after Redis came back")
        assert "rate limiting resumed" in gw.read_log()
