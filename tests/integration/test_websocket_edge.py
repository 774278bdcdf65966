"""The `/ws` edge on the wire: JSON-RPC over WebSocket (subprotocol `mcp`, one message per text
frame) with a real `websockets` client, against a real gateway and real SDK backends over
Streamable HTTP, WebSocket and stdio."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import wait_until_async
from tests.support.stacks import every_transport

TRANSPORT_NAMESPACES = ("web", "sock", "local")  # Streamable HTTP, WebSocket, stdio
MAX_BODY = 65536
#: Longest a single answer may take before the test fails (nothing here should come near it).
ANSWER_TIMEOUT = 15.0


@dataclass
class Stack:
    base: str  # http://127.0.0.1:PORT
    #: Where each namespace's backend writes its stderr (a stdio backend's goes to the gateway's log).
    stderr_logs: dict[str, Path]

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("ws-edge")
    with every_transport(workdir, {"max_body_bytes": MAX_BODY}) as started:
        logs = {"web": started.web.proc.log_path, "sock": started.sock.proc.log_path, "local": started.gateway.log_path}
        yield Stack(started.gateway.url, logs)


class WsClient:
    """A raw JSON-RPC client on one WebSocket: every frame is visible to the test."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self._ids = itertools.count(1)
        #: Messages read while waiting for something else (notifications, other answers).
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            return orjson.loads(await self.ws.recv())

    def request_message(self, method: str, params: dict[str, Any] | None = None, id: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids) if id is None else id, "method": method}
        if params is not None:
            message["params"] = params
        return message

    async def answer_to(self, request_id: Any) -> dict[str, Any]:
        """Read until the response to `request_id`; everything else read on the way is kept in `seen`."""
        while True:
            message = await self.recv()
            if "method" not in message and message.get("id") == request_id:
                return message
            self.seen.append(message)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = self.request_message(method, params)
        await self.send(message)
        return await self.answer_to(message["id"])

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.call(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": capabilities or {}, "clientInfo": {"name": "ws-test", "version": "1"}},
        )
        assert "result" in answer, answer
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer


@asynccontextmanager
async def open_ws(stack: Stack, *, initialize: bool = True, capabilities: dict[str, Any] | None = None) -> AsyncIterator[WsClient]:
    async with connect(stack.ws_url, subprotocols=["mcp"], proxy=None, open_timeout=10) as ws:  # type: ignore[list-item]
        client = WsClient(ws)
        if initialize:
            await client.initialize(capabilities)
        yield client


def tool_text(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    assert not answer["result"].get("isError"), answer
    return answer["result"]["content"][0]["text"]


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def sessions_active(stack: Stack) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{stack.base}/health")).json()["sessions_active"]


# -- handshake --------------------------------------------------------------------------------


async def test_subprotocol_mcp_is_negotiated(stack: Stack) -> None:
    async with connect(stack.ws_url, subprotocols=["other", "mcp"], proxy=None) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "mcp"


async def test_without_the_mcp_subprotocol_the_handshake_is_refused_saying_why(stack: Stack) -> None:
    for offered in (None, ["graphql-ws"]):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(stack.ws_url, subprotocols=offered, proxy=None):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 400
        error = orjson.loads(refused.value.response.body or b"{}")["error"]
        assert error["code"] == -32600 and "subprotocol 'mcp'" in error["message"]

    def refusal_line() -> str | None:
        complete = stack.stderr_logs["local"].read_text().split("\n")[:-1]
        return next((line for line in complete if "subprotocol 'mcp' not offered" in line and "graphql-ws" in line), None)

    assert orjson.loads(await wait_until_async(refusal_line, timeout=30))["subprotocols"] == "graphql-ws"


async def test_a_header_that_is_not_utf8_does_not_break_the_handshake(stack: Stack) -> None:
    upgrade = {
        "connection": "upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-protocol": "mcp",
    }
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("x-mcp-transport", "x-forwarded-for", "authorization", "user-agent"):
            answer = await client.get(f"{stack.base}/ws", headers={**upgrade, name: b"\xff\xfetcp\xc3"})  # type: ignore[dict-item]
            assert answer.status_code == 101, (name, answer.status_code)


async def test_foreign_origin_is_refused_at_the_handshake(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(stack.ws_url, subprotocols=["mcp"], origin="http://evil.example", proxy=None):  # type: ignore[list-item,arg-type]
            pass
    assert refused.value.response.status_code == 403
    # The gateway's own origin passes.
    async with connect(stack.ws_url, subprotocols=["mcp"], origin=stack.base, proxy=None) as ws:  # type: ignore[list-item,arg-type]
        assert ws.subprotocol == "mcp"


# -- the session lifecycle ----------------------------------------------------------------------


async def test_initialize_is_answered_by_the_gateway(stack: Stack) -> None:
    async with open_ws(stack, initialize=False) as client:
        answer = await client.initialize()
    result = answer["result"]
    assert result["serverInfo"]["name"] == "mcp-gateway"
    assert result["protocolVersion"] == "2025-11-25"
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_list_and_call_over_each_backend_transport(stack: Stack, ns: str) -> None:
    async with open_ws(stack) as client:
        tools = {tool["name"] for tool in (await client.call("tools/list", {}))["result"]["tools"]}
        assert {f"{ns}__echo", f"{ns}__whoami"} <= tools
        assert tool_text(await client.call("tools/call", {"name": f"{ns}__whoami", "arguments": {}})) == ns
        assert tool_text(await client.call("tools/call", {"name": f"{ns}__echo", "arguments": {"text": "über ✓"}})) == "über ✓"
        failed = await client.call("tools/call", {"name": f"{ns}__fail", "arguments": {"message": "boom"}})
        assert failed["result"]["isError"] is True and "boom" in failed["result"]["content"][0]["text"]


async def test_request_before_initialize_is_refused_clearly(stack: Stack) -> None:
    async with open_ws(stack, initialize=False) as client:
        answer = await client.call("tools/list", {})
        assert answer["error"]["code"] == -32600
        assert "initialize" in answer["error"]["message"]
        # Nothing was started: the connection still initializes normally afterwards.
        await client.initialize()
        assert (await client.call("ping"))["result"] == {}


async def test_a_second_initialize_is_refused(stack: Stack) -> None:
    async with open_ws(stack) as client:
        again = client.request_message(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}
        )
        await client.send(again)
        answer = await client.answer_to(again["id"])
        assert answer["error"]["code"] == -32600
        assert "already initialized" in answer["error"]["message"]
        assert (await client.call("ping"))["result"] == {}


async def test_closing_the_socket_ends_the_gateway_session(stack: Stack) -> None:
    # Every other test closes its connections; wait for their sessions to be gone too.
    await wait_until_async(lambda: _is(sessions_active(stack), 0), message="sessions from earlier tests still active")
    async with open_ws(stack) as client:
        # Bind upstream sessions on every transport, so ending the session has work to do.
        for ns in TRANSPORT_NAMESPACES:
            tool_text(await client.call("tools/call", {"name": f"{ns}__echo", "arguments": {"text": "x"}}))
        assert await sessions_active(stack) == 1
    await wait_until_async(lambda: _is(sessions_active(stack), 0), message="the closed connection's session is still active")


# -- bad input ----------------------------------------------------------------------------------


async def test_malformed_frame_is_a_parse_error_and_the_connection_goes_on(stack: Stack) -> None:
    async with open_ws(stack) as client:
        await client.send('{"jsonrpc": "2.0", "id": 1, "method": ')
        answer = await client.recv()
        assert answer["error"]["code"] == -32700 and answer["id"] is None
        assert tool_text(await client.call("tools/call", {"name": "web__echo", "arguments": {"text": "alive"}})) == "alive"


@pytest.mark.parametrize(
    "frame",
    [
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]},
        {"jsonrpc": "2.0"},
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
        "just a string",
    ],
    ids=["no-jsonrpc", "float-id", "array-params", "empty", "batch", "string"],
)
async def test_invalid_json_rpc_is_invalid_request(stack: Stack, frame: Any) -> None:
    async with open_ws(stack) as client:
        await client.send(orjson.dumps(frame).decode())
        answer = await client.recv()
        assert answer["error"]["code"] == -32600, answer
        assert (await client.call("ping"))["result"] == {}


async def test_unknown_method_is_method_not_found(stack: Stack) -> None:
    async with open_ws(stack) as client:
        answer = await client.call("frobnicate/now", {})
        assert answer["error"]["code"] == -32601
        assert "frobnicate/now" in answer["error"]["message"]


async def test_unknown_tool_or_namespace_is_named(stack: Stack) -> None:
    async with open_ws(stack) as client:
        for name in ("nowhere__echo", "no_separator_at_all"):
            answer = await client.call("tools/call", {"name": name, "arguments": {}})
            assert answer["error"]["code"] == -32602, answer
            assert name in answer["error"]["message"]
        # A known namespace routes the call; its backend (the SDK) answers for its own unknown
        # tool with a tool error that names it. The gateway passes that answer on.
        answer = await client.call("tools/call", {"name": "web__no_such_tool", "arguments": {}})
        assert answer["result"]["isError"] is True
        assert "no_such_tool" in answer["result"]["content"][0]["text"]


async def test_oversized_message_is_refused_and_the_connection_goes_on(stack: Stack) -> None:
    async with open_ws(stack) as client:
        big = client.request_message("tools/call", {"name": "web__echo", "arguments": {"text": "x" * (MAX_BODY + 10)}})
        await client.send(big)
        answer = await client.recv()
        assert answer["error"]["code"] == -32600
        assert str(MAX_BODY) in answer["error"]["message"]
        # The limit counts bytes, not characters: 3-byte characters reach it sooner.
        wide = client.request_message("tools/call", {"name": "web__echo", "arguments": {"text": "✓" * (MAX_BODY // 2)}})
        await client.send(wide)
        assert (await client.recv())["error"]["code"] == -32600
        # Just under the limit still goes through.
        near = "y" * (MAX_BODY - 200)
        assert tool_text(await client.call("tools/call", {"name": "web__echo", "arguments": {"text": near}})) == near


async def test_a_frame_far_beyond_the_limit_closes_that_connection_only(stack: Stack) -> None:
    """Frames beyond twice `max_body_bytes` are not even read: the WebSocket closes with 1009."""
    async with open_ws(stack) as bystander:
        async with open_ws(stack) as client:
            await client.send(client.request_message("ping", {"pad": "z" * (2 * MAX_BODY + 10)}))
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert (await bystander.call("ping"))["result"] == {}


# -- concurrency and streaming ------------------------------------------------------------------


async def test_many_concurrent_requests_are_answered_and_matched_by_id(stack: Stack) -> None:
    async with open_ws(stack) as client:
        slow = client.request_message("tools/call", {"name": "web__slow", "arguments": {"seconds": 1.5}}, id="slow")
        await client.send(slow)
        expected: dict[Any, str] = {}
        for i in range(45):
            ns = TRANSPORT_NAMESPACES[i % 3]
            request_id: Any = i if i % 2 else f"req-{i}"
            expected[request_id] = f"{ns}:{i}"
            await client.send(
                client.request_message("tools/call", {"name": f"{ns}__echo", "arguments": {"text": f"{ns}:{i}"}}, id=request_id)
            )
        answers: dict[Any, dict[str, Any]] = {}
        order: list[Any] = []
        while len(answers) < len(expected) + 1:
            message = await client.recv()
            assert message["id"] not in answers, f"answered twice: {message}"
            answers[message["id"]] = message
            order.append(message["id"])
        for request_id, text in expected.items():
            assert tool_text(answers[request_id]) == text
        assert tool_text(answers["slow"]) == "done"
        # Requests run concurrently: the slow call did not hold up those sent after it, not even
        # those to the same backend.
        before_slow = order[: order.index("slow")]
        assert any(expected[i].startswith("web:") for i in before_slow), order


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_progress_notifications_arrive_before_the_answer(stack: Stack, ns: str) -> None:
    async with open_ws(stack) as client:
        message = client.request_message(
            "tools/call", {"name": f"{ns}__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok-7"}}
        )
        await client.send(message)
        answer = await client.answer_to(message["id"])
        assert tool_text(answer) == "done"
        progress = [m for m in client.seen if m.get("method") == "notifications/progress"]
        assert [p["params"]["progress"] for p in progress] == [1, 2, 3]
        assert {p["params"]["progressToken"] for p in progress} == {"tok-7"}


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_sampling_request_is_answered_by_the_ws_client(stack: Stack, ns: str) -> None:
    async with open_ws(stack, capabilities={"sampling": {}}) as client:
        call = client.request_message("tools/call", {"name": f"{ns}__sample", "arguments": {"prompt": "hi"}})
        await client.send(call)
        server_request = await client.recv()
        assert server_request["method"] == "sampling/createMessage", server_request
        assert server_request["params"]["messages"][0]["content"]["text"] == "hi"
        await client.send(
            {
                "jsonrpc": "2.0",
                "id": server_request["id"],
                "result": {"role": "assistant", "content": {"type": "text", "text": "sampled:hi"}, "model": "test-model"},
            }
        )
        assert tool_text(await client.answer_to(call["id"])) == "sampled:hi"


async def test_sampling_is_refused_for_a_client_without_the_capability(stack: Stack) -> None:
    async with open_ws(stack) as client:
        answer = await client.call("tools/call", {"name": "web__sample", "arguments": {"prompt": "hi"}})
    assert answer["result"]["isError"] is True
    assert "sampling" in answer["result"]["content"][0]["text"]
    assert not any(m.get("method") == "sampling/createMessage" for m in client.seen)


async def test_closed_connection_while_a_call_is_in_flight_leaves_the_gateway_serving(stack: Stack) -> None:
    async with open_ws(stack) as client:
        await client.send(client.request_message("tools/call", {"name": "local__slow", "arguments": {"seconds": 2}}))
    async with open_ws(stack) as client:
        assert tool_text(await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "next"}})) == "next"


@pytest.mark.parametrize(("ns", "seconds"), [("local", 61), ("sock", 62)])
async def test_a_call_abandoned_by_a_closed_connection_is_cancelled_upstream(stack: Stack, ns: str, seconds: int) -> None:
    """A backend on a shared connection (stdio, WebSocket) is sent `notifications/cancelled` when
    the client that asked goes away: the answer could reach nobody, and the work would go on."""
    log = stack.stderr_logs[ns]
    async with open_ws(stack) as client:
        await client.send(client.request_message("tools/call", {"name": f"{ns}__slow", "arguments": {"seconds": seconds}}))
        await wait_until_async(
            lambda: f"slow call started ({seconds}s)" in log.read_text(), timeout=ANSWER_TIMEOUT, message="the call reached the backend"
        )
    await wait_until_async(
        lambda: f"slow call cancelled ({seconds}s)" in log.read_text(), timeout=ANSWER_TIMEOUT, message="the backend was told to cancel"
    )
    async with open_ws(stack) as client:
        assert tool_text(await client.call("tools/call", {"name": f"{ns}__echo", "arguments": {"text": "next"}})) == "next"
