"""The Streamable HTTP edge and the dispatch in front of the pipeline, in-process: sessions, the
JSON-RPC envelope's errors with their ids, and the HTTP rules (Accept, Origin, Host, body size)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support.inprocess import BASE_URL, AsgiSession, text_of
from tests.support.net import wait_until_async


async def test_initialize_issues_a_session_and_merges_capabilities(two: AsgiSession) -> None:
    fresh = AsgiSession(two.client)
    result = (await fresh.initialize())["result"]
    assert fresh.session_id and fresh.session_id != two.session_id and len(fresh.session_id) >= 32
    assert result["serverInfo"]["name"] == "mcp-gateway"
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])


async def test_a_request_without_a_session_is_400_and_an_unknown_session_404(two: AsgiSession) -> None:
    response = await AsgiSession(two.client).request("tools/list")
    assert response.status_code == 400 and "Mcp-Session-Id" in response.json()["error"]["message"]
    stranger = AsgiSession(two.client, session_id="no-such-session")
    assert (await stranger.request("tools/list")).status_code == 404
    assert (await two.client.get("/mcp", headers=stranger.headers())).status_code == 404


async def test_delete_ends_the_session(two: AsgiSession) -> None:
    assert (await two.client.delete("/mcp", headers=two.headers())).status_code == 204
    assert (await two.request("ping")).status_code == 404
    assert (await two.client.delete("/mcp", headers=two.headers())).status_code == 404


async def test_malformed_json_is_a_parse_error_without_an_id(two: AsgiSession) -> None:
    response = await two.post(b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status_code == 400
    assert response.json()["id"] is None and response.json()["error"]["code"] == -32700


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"id": 1, "method": "ping"}, '"jsonrpc": "2.0"'),
        ({"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]}, "'params' must be an object"),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, "'id' must be a string or an integer"),
        ({"jsonrpc": "2.0", "id": "a", "method": 5}, "'method' must be a non-empty string"),
        ({"jsonrpc": "2.0"}, "needs 'method'"),
    ],
)
async def test_an_invalid_envelope_is_invalid_request_naming_the_problem(two: AsgiSession, body: Any, problem: str) -> None:
    """The envelope is not trusted, its id included: the answer carries id null (JSON-RPC 2.0 §5)."""
    response = await two.post(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["id"] is None and answer["error"]["code"] == -32600 and problem in answer["error"]["message"], answer
    assert (await two.call("ping"))["result"] == {}


async def test_batches_are_rejected_with_a_clear_error(two: AsgiSession) -> None:
    response = await two.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32600 and "batch" in error["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "alpha__echo", "arguments": "x"}, "arguments"),
        ({"name": 5, "arguments": {}}, "name"),
        ({"name": "alpha__echo", "arguments": {"text": "x"}, "_meta": "x"}, "_meta"),
    ],
)
async def test_a_wrongly_typed_field_is_invalid_params_naming_it(two: AsgiSession, params: dict[str, Any], field: str) -> None:
    response = await two.post({"jsonrpc": "2.0", "id": f"bad-{field}", "method": "tools/call", "params": params})
    answer = response.json()
    assert answer["id"] == f"bad-{field}" and answer["error"]["code"] == -32602, answer
    assert f"'{field}'" in answer["error"]["message"] and answer["error"]["data"] == {"field": field}, answer
    assert text_of(await two.tool("alpha__echo", text="still here")) == "still here"


async def test_a_duplicate_id_in_flight_is_refused_and_the_first_is_answered(two: AsgiSession) -> None:
    first = asyncio.create_task(
        two.post({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "alpha__slow", "arguments": {"seconds": 1}}})
    )

    async def refused() -> httpx.Response | None:
        """A ping with the same id: answered until the slow call holds the id, refused from then on."""
        assert not first.done(), "the slow call ended before a duplicate met it"
        duplicate = await two.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})
        return duplicate if duplicate.status_code == 400 else None

    duplicate = await wait_until_async(refused, timeout=5, interval=0.01, message="a duplicate id refused")
    error = duplicate.json()
    assert error["id"] == 99 and error["error"]["code"] == -32600 and "already in flight" in error["error"]["message"], error
    answered = await first
    assert answered.status_code == 200 and answered.json()["id"] == 99 and "result" in answered.json()
    # The id is free again once its request was answered.
    assert (await two.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})).json() == {"jsonrpc": "2.0", "id": 99, "result": {}}


async def test_accept_must_offer_json_and_event_stream(two: AsgiSession) -> None:
    response = await two.request("ping", accept="application/json")
    assert response.status_code == 406 and "text/event-stream" in response.json()["error"]["message"]
    assert (await two.client.get("/mcp", headers=two.headers(accept="application/json"))).status_code == 406


async def test_a_foreign_origin_is_403_a_foreign_host_421_and_our_own_pass(two: AsgiSession) -> None:
    assert (await two.request("ping", origin="http://evil.example")).status_code == 403
    assert (await two.request("ping", host="attacker.example:8080")).status_code == 421
    assert (await two.request("ping", origin=BASE_URL)).status_code == 200


async def test_an_oversized_body_is_413_and_the_session_goes_on(two: AsgiSession) -> None:
    big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {"text": "x" * 70000}}}
    assert (await two.post(big)).status_code == 413
    assert (await two.call("ping"))["result"] == {}


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_other_methods_are_405_with_allow(two: AsgiSession, method: str) -> None:
    response = await two.client.request(method, "/mcp", headers=two.headers())
    assert response.status_code == 405 and response.headers["allow"] == "POST, GET, DELETE"
