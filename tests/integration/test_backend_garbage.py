"""Backends that misbehave in what they send: a very large answer, garbage (invalid JSON, a JSON
array, an answer to another request), keep-alive comments forever. Each is the backend's failure
(-32050/-32051 naming the namespace, counted by its breaker), never the client's parse error;
a large answer arrives whole; and the gateway, the connection and every other call carry on."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import GatewayProc, start_gateway, stdio_command, wait_until
from tests.support.guard import FLAKY, Flaky, start_flaky
from tests.support.mcp_http import RawSession, messages
from tests.support.mcp_ws import WsSession

#: Every misbehaving namespace answers within this; the breaker opens after this many failures.
TIMEOUT = 1.0
THRESHOLD = 3


@dataclass
class Stack:
    url: str
    gateway: GatewayProc
    flaky: Flaky


def _namespace(name: str, backend: dict[str, Any]) -> dict[str, Any]:
    return {"backends": [{"name": name, "timeout_seconds": TIMEOUT, **backend}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("garbage")
    flaky = start_flaky(workdir)
    ws_url = flaky.url.replace("http://", "ws://").removesuffix("/mcp") + "/ws"
    namespaces = {
        "ok": {"backends": [{"name": "ok-1", "command": stdio_command("ok")}]},
        **{f"junk_{kind}": _namespace(f"junk-{kind}-1", {"url": flaky.url}) for kind in ("http", "ws_client")},
        # One namespace per misbehaviour whose breaker a test watches, so none disturbs another.
        **{f"trip_{tool}": _namespace(f"trip-{tool}-1", {"url": flaky.url}) for tool in ("garbage", "array", "other_id", "sse_garbage")},
        "junk_ws": _namespace("junk-ws-1", {"url": ws_url}),
        "junk_stdio": _namespace("junk-stdio-1", {"command": [sys.executable, str(FLAKY), "--stdio", "--name", "junk-stdio"]}),
    }
    config = {"namespaces": namespaces, "breaker": {"failure_threshold": THRESHOLD, "cooldown_seconds": 600}}
    try:
        gateway = start_gateway(config, workdir)
    except BaseException:
        flaky.proc.stop()
        raise
    yield Stack(gateway.url, gateway, flaky)
    gateway.proc.stop()
    flaky.proc.stop()


@pytest.fixture
def session(stack: Stack) -> Iterator[RawSession]:
    raw = RawSession(stack.url)
    raw.initialize()
    yield raw
    raw.close()


def call_tool(session: RawSession, name: str, arguments: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and final message of a tool call."""
    response = session.request("tools/call", {"name": name, "arguments": arguments or {}})
    return response.status_code, messages(response)[-1]


def assert_backend_failure(status: int, message: dict[str, Any], namespace: str, code: int = -32050) -> str:
    """A backend failure naming the namespace, on HTTP 200 (the client did nothing wrong)."""
    assert status == 200, (status, message)
    error = message.get("error")
    assert error is not None and error["code"] == code, message
    assert f"'{namespace}'" in error["message"] and error["data"]["namespace"] == namespace, error
    return error["message"]


def assert_ok(session: RawSession) -> None:
    status, message = call_tool(session, "ok__echo", {"text": "still fine"})
    assert status == 200 and message["result"]["content"][0]["text"] == "still fine", message


# -- large answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_a_large_answer_arrives_whole(session: RawSession, sse: bool) -> None:
    for size in (700_000, 3_000_000):
        status, message = call_tool(session, "junk_http__big", {"bytes": size, "sse": sse})
        assert status == 200 and "result" in message, (status, str(message)[:300])
        assert message["result"]["content"][0]["text"] == "x" * size


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_an_answer_over_the_bound_is_a_backend_failure(session: RawSession, sse: bool) -> None:
    status, message = call_tool(session, "junk_http__big", {"bytes": 17 * 1024 * 1024, "sse": sse})
    assert "exceeds" in assert_backend_failure(status, message, "junk_http")
    assert_ok(session)


# -- garbage from HTTP backends ---------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["garbage", "array", "other_id", "sse_garbage"])
def test_garbage_from_an_http_backend_is_its_failure_and_trips_its_breaker(stack: Stack, session: RawSession, tool: str) -> None:
    namespace = f"trip_{tool}"
    for _ in range(THRESHOLD):
        status, message = call_tool(session, f"{namespace}__{tool}")
        assert "invalid message" in assert_backend_failure(status, message, namespace)
    sent = stack.flaky.counts().get("tools/call", 0)
    status, message = call_tool(session, f"{namespace}__{tool}")
    assert "circuit breaker open" in assert_backend_failure(status, message, namespace)
    assert stack.flaky.counts().get("tools/call", 0) == sent  # Refused at once: the breaker counted them.
    assert_ok(session)


@pytest.mark.parametrize("tool", ["garbage", "array", "other_id", "sse_garbage"])
def test_garbage_from_an_http_backend_answers_a_websocket_client(stack: Stack, tool: str) -> None:
    with WsSession(stack.url.replace("http://", "ws://") + "/ws") as ws:
        ws.initialize()
        answer = ws.call("tools/call", {"name": f"junk_ws_client__{tool}", "arguments": {}})
        assert answer["error"]["code"] == -32050 and "'junk_ws_client'" in answer["error"]["message"], answer
        assert "result" in ws.call("tools/call", {"name": "ok__echo", "arguments": {"text": "on"}})


# -- keep-alives ------------------------------------------------------------------------------------


def test_keepalive_comments_do_not_extend_the_call_timeout(stack: Stack, session: RawSession) -> None:
    started = time.monotonic()
    status, message = call_tool(session, "junk_http__keepalive")
    elapsed = time.monotonic() - started
    assert_backend_failure(status, message, "junk_http", code=-32051)
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 3, f"timed out after {elapsed:.2f}s; configured {TIMEOUT:g}s"
    # Nothing stays in flight: a drain would not wait for the abandoned call.
    wait_until(lambda: httpx.get(f"{stack.url}/readyz", timeout=5).json()["in_flight"] == 0, timeout=5, message="in_flight back to 0")


# -- garbage on shared connections (WebSocket, stdio) ------------------------------------------------


@pytest.mark.parametrize("namespace", ["junk_ws", "junk_stdio"])
def test_garbage_lines_on_a_shared_connection_harm_no_other_call(session: RawSession, namespace: str) -> None:
    # Invalid JSON, an array, an object with an unusable id, bad params: dropped, then the answer.
    status, message = call_tool(session, f"{namespace}__noise")
    assert status == 200 and message.get("result", {}).get("content", [{}])[0].get("text") == "noise", message
    # An answer inside an array names its call: that call fails at once, as the backend's fault.
    started = time.monotonic()
    status, message = call_tool(session, f"{namespace}__array")
    assert "invalid message" in assert_backend_failure(status, message, namespace)
    assert time.monotonic() - started < TIMEOUT
    # Garbage naming no call: its call times out while another call on the connection is answered.
    with ThreadPoolExecutor(1) as pool:
        lost = pool.submit(call_tool, session, f"{namespace}__garbage")
        status, message = call_tool(session, f"{namespace}__noise")
        assert status == 200 and "result" in message, message
        assert_backend_failure(*lost.result(timeout=10), namespace, code=-32051)
    status, message = call_tool(session, f"{namespace}__noise")
    assert status == 200 and "result" in message, message
