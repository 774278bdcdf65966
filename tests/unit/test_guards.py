"""The pipeline's guards in-process: API-key scopes per namespace, rate limits (memory), and the
circuit breaker of a backend that went away."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.inprocess import AsgiSession, GatewayFactory, ServedApp, everything_server, namespaces, text_of

API_KEY = "mcpk_unit_0123456789"
BREAKER = {"failure_threshold": 2, "error_rate": 0.5, "window_seconds": 30, "min_calls": 100, "cooldown_seconds": 30}


async def test_an_api_key_reaches_only_the_namespaces_of_its_scopes(gateway: GatewayFactory, alpha: ServedApp, beta: ServedApp) -> None:
    key = {"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "ci-bot", "scopes": ["mcp:beta"]}
    client = await gateway({"auth": {"mode": "api_key", "api_keys": [key]}, "namespaces": namespaces(alpha=alpha.url, beta=beta.url)})
    assert (await AsgiSession(client).request("initialize", {})).status_code == 401
    assert (await AsgiSession(client, token="mcpk_wrong").request("initialize", {})).status_code == 401
    session = AsgiSession(client, token=API_KEY)
    await session.initialize()
    assert text_of(await session.tool("beta__whoami")) == "beta"
    refused = await session.request("tools/call", {"name": "alpha__whoami", "arguments": {}})
    assert refused.status_code == 403 and refused.json()["id"] == session.next_id, refused.text


def assert_rate_limited(response: Any, scope: str) -> None:
    """A 429 with `Retry-After` and the JSON-RPC error (-32029) naming the exhausted budget."""
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == -32029 and scope in error["message"], error


async def test_over_a_namespace_budget_is_429_and_other_namespaces_still_answer(
    gateway: GatewayFactory, alpha: ServedApp, beta: ServedApp
) -> None:
    limits = {"enabled": True, "per_principal": None, "per_ip": None, "namespaces": {"alpha": "2/day"}}
    session = AsgiSession(await gateway({"rate_limits": limits, "namespaces": namespaces(alpha=alpha.url, beta=beta.url)}))
    await session.initialize()
    assert text_of(await session.tool("alpha__echo", text="a")) == "a"
    assert text_of(await session.tool("alpha__echo", text="b")) == "b"
    refused = await session.request("tools/call", {"name": "alpha__echo", "arguments": {"text": "c"}})
    assert_rate_limited(refused, "namespace 'alpha'")
    assert refused.json()["id"] == session.next_id
    assert text_of(await session.tool("beta__echo", text="d")) == "d"


async def test_a_backend_gone_fails_its_calls_until_its_circuit_opens_and_others_go_on(gateway: GatewayFactory, beta: ServedApp) -> None:
    async with everything_server("victim") as victim:
        config = {"breaker": BREAKER, "namespaces": namespaces(victim=victim.url, beta=beta.url)}
        session = AsgiSession(await gateway(config))
        await session.initialize()
        assert text_of(await session.tool("victim__echo", text="up")) == "up"
        await victim.stop()
        failures = [await session.tool("victim__echo", text="x") for _ in range(BREAKER["failure_threshold"])]
        for failure in failures:
            assert failure["error"]["code"] == -32050 and failure["error"]["data"]["namespace"] == "victim", failure
            assert "circuit breaker open" not in failure["error"]["message"], failure
        fast = await session.tool("victim__echo", text="x")
        assert fast["error"]["code"] == -32050 and "circuit breaker open" in fast["error"]["message"], fast
        assert fast["error"]["data"]["namespace"] == "victim"
        assert text_of(await session.tool("beta__echo", text="still here")) == "still here"
