"""The Streamable HTTP rules on `/mcp`, checked on the wire against a real gateway and backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import start_backend, start_gateway
from tests.support.mcp_http import RawSession, messages, parse_sse


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("http-rules")
    backend = start_backend("alpha", workdir, "http")
    gateway = start_gateway(
        {"max_body_bytes": 65536, "namespaces": {"alpha": {"backends": [{"name": "alpha-1", "url": backend.url}]}}},
        workdir,
    )
    yield gateway.url
    gateway.proc.stop()
    backend.proc.stop()


@pytest.fixture
def session(stack: str) -> Iterator[RawSession]:
    raw = RawSession(stack)
    raw.initialize()
    yield raw
    raw.close()


def test_initialize_issues_a_session_and_merges_capabilities(stack: str) -> None:
    raw = RawSession(stack)
    result = raw.initialize()["result"]
    assert raw.session_id and len(raw.session_id) >= 32
    assert result["protocolVersion"] == "2025-11-25"
    assert result["serverInfo"]["name"] == "mcp-gateway"
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
def test_each_supported_revision_is_negotiated(stack: str, version: str) -> None:
    raw = RawSession(stack)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = raw.post(body)
    assert response.json()["result"]["protocolVersion"] == version
    raw.session_id = response.headers["mcp-session-id"]
    assert raw.call("tools/list", {})["result"]["tools"]


def test_unknown_client_version_is_answered_with_the_latest(stack: str) -> None:
    raw = RawSession(stack)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    assert raw.post(body).json()["result"]["protocolVersion"] == "2025-11-25"


def test_oversized_initialize_capabilities_are_invalid_params_and_nothing_is_stored(stack: str) -> None:
    """What `initialize` declares is kept for the session's lifetime, so its size is capped."""
    raw = RawSession(stack)
    capabilities = {"experimental": {"padding": "x" * 20_000}}
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = raw.post(body)
    assert response.status_code == 200 and "mcp-session-id" not in response.headers
    error = response.json()
    assert error["id"] == 7 and error["error"]["code"] == -32602
    assert "capabilities" in error["error"]["message"] and "8192" in error["error"]["message"]
    huge_name = {**body, "params": {**body["params"], "capabilities": {}, "clientInfo": {"name": "n" * 20_000, "version": "1"}}}
    assert raw.post(huge_name).json()["error"]["code"] == -32602
    assert raw.initialize()["result"]["serverInfo"]["name"] == "mcp-gateway"


def test_accept_must_offer_json_and_event_stream(session: RawSession) -> None:
    response = session.post({"jsonrpc": "2.0", "id": 5, "method": "ping"}, accept="application/json")
    assert response.status_code == 406
    assert "text/event-stream" in response.json()["error"]["message"]


def test_batches_are_rejected_with_a_clear_error(session: RawSession) -> None:
    response = session.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32600 and "batch" in error["message"]


def test_notifications_and_responses_get_202(session: RawSession) -> None:
    assert session.post({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}).status_code == 202
    assert session.post({"jsonrpc": "2.0", "id": "gw-unknown", "result": {}}).status_code == 202


def test_missing_session_header_is_400(stack: str) -> None:
    raw = RawSession(stack)
    response = raw.request("tools/list")
    assert response.status_code == 400
    assert "Mcp-Session-Id" in response.json()["error"]["message"]


def test_unknown_session_is_404(stack: str) -> None:
    raw = RawSession(stack, session_id="no-such-session")
    assert raw.request("tools/list").status_code == 404
    assert raw.client.get(raw.url, headers=raw.headers()).status_code == 404


def test_delete_ends_the_session(session: RawSession) -> None:
    assert session.client.delete(session.url, headers=session.headers()).status_code == 204
    assert session.request("ping").status_code == 404
    assert session.client.delete(session.url, headers=session.headers()).status_code == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD"])
def test_other_methods_are_405_with_allow(session: RawSession, method: str) -> None:
    response = session.client.request(method, session.url, headers=session.headers())
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, GET, DELETE"
    assert session.request("ping").status_code == 200


def test_unsupported_protocol_version_header_is_400(session: RawSession) -> None:
    response = session.request("ping", mcp_protocol_version="2099-01-01")
    assert response.status_code == 400
    assert "2099-01-01" in response.json()["error"]["message"]


def test_malformed_json_is_a_parse_error(session: RawSession) -> None:
    response = session.post(b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize(
    "body",
    [
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]},
        {"jsonrpc": "2.0"},
        "just a string",
    ],
)
def test_invalid_json_rpc_is_invalid_request(session: RawSession, body: object) -> None:
    response = session.post(body if not isinstance(body, str) else b'"just a string"')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


def test_unknown_method_is_method_not_found(session: RawSession) -> None:
    message = session.call("frobnicate/now", {})
    assert message["error"]["code"] == -32601
    assert "frobnicate/now" in message["error"]["message"]


def test_unknown_tool_and_namespace_name_the_tool(session: RawSession) -> None:
    for name in ("alpha__no_such_tool", "nowhere__echo"):
        message = session.call("tools/call", {"name": name, "arguments": {}})
        if "error" in message:
            assert message["error"]["code"] == -32602 and name.split("__")[-1] in message["error"]["message"]
        else:  # The backend itself reports its unknown tool as a tool error.
            assert message["result"]["isError"] is True


def test_unknown_namespace_is_invalid_params(session: RawSession) -> None:
    message = session.call("tools/call", {"name": "nowhere__echo", "arguments": {}})
    assert message["error"]["code"] == -32602
    assert "nowhere__echo" in message["error"]["message"]


def test_oversized_body_is_413_and_the_session_goes_on(session: RawSession) -> None:
    big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {"text": "x" * 70000}}}
    response = session.post(big)
    assert response.status_code == 413
    assert session.call("ping")["result"] == {}


def test_tool_call_is_routed_with_the_prefix_stripped(session: RawSession) -> None:
    tools = [t["name"] for t in session.call("tools/list", {})["result"]["tools"]]
    assert "alpha__echo" in tools and "echo" not in tools
    message = session.call("tools/call", {"name": "alpha__echo", "arguments": {"text": "hi"}})
    assert message["result"]["content"][0]["text"] == "hi"


def test_progress_streams_as_sse_before_the_response(session: RawSession) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 77,
        "method": "tools/call",
        "params": {"name": "alpha__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}},
    }
    with session.client.stream(
        "POST", session.url, content=httpx.Request("POST", "/", json=body).content, headers=session.headers()
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        events = parse_sse(response.read().decode())
    data = [e["data"] for e in events if e["data"]]
    progress = [m for m in data if m.get("method") == "notifications/progress"]
    assert [p["params"]["progress"] for p in progress] == [1, 2, 3]
    assert all(p["params"]["progressToken"] == "tok" for p in progress)
    assert data[-1]["id"] == 77 and "result" in data[-1]


def test_foreign_origin_is_403_and_own_origin_passes(session: RawSession, stack: str) -> None:
    assert session.request("ping", origin="http://evil.example").status_code == 403
    own = stack.replace("http://", "")
    assert session.request("ping", origin=f"http://{own}").status_code == 200


def test_foreign_host_is_refused(session: RawSession) -> None:
    response = session.request("ping", host="attacker.example:8080")
    assert response.status_code == 421


def test_get_opens_the_standalone_stream(session: RawSession) -> None:
    session.call("tools/call", {"name": "alpha__echo", "arguments": {"text": "bind"}})
    with session.client.stream("GET", session.url, headers=session.headers()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


def test_get_without_event_stream_accept_is_406(session: RawSession) -> None:
    headers = session.headers(accept="application/json")
    assert session.client.get(session.url, headers=headers).status_code == 406


def test_json_answers_come_as_json(session: RawSession) -> None:
    response = session.request("ping")
    assert response.headers["content-type"].startswith("application/json")
    assert messages(response) == [{"jsonrpc": "2.0", "id": session.next_id, "result": {}}]
