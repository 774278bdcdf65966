"""Pass-through: a gateway with exactly one unprefixed namespace of one backend is transparent.
Every answer (lists, results with isError and structuredContent, errors, `_meta`, ids,
notifications and server-to-client requests) is exactly what the backend sends when asked
directly. And an unprefixed namespace among prefixed ones is reached by its bare names."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Backend, start_backend, start_gateway, stdio_command
from tests.support.mcp_http import ACCEPT, VERSION, parse_sse

ANSWER_TIMEOUT = 15.0
CLIENT_CAPABILITIES = {"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}}
SAMPLING_ANSWER = {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "test-model"}


@dataclass
class Pair:
    """A backend, and a gateway whose only namespace is that backend, unprefixed."""

    transport: str
    backend: Backend
    gateway: str


@pytest.fixture(scope="module", params=["http", "ws"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"passthrough-{request.param}")
    backend = start_backend("solo", workdir, request.param)
    try:
        gateway = start_gateway({"namespaces": {"solo": {"prefix": False, "backends": [{"name": "solo-1", "url": backend.url}]}}}, workdir)
    except BaseException:
        backend.proc.stop()
        raise
    yield Pair(request.param, backend, gateway.url)
    gateway.proc.stop()
    backend.proc.stop()


# -- clients: the same exchange over Streamable HTTP or WebSocket ------------------------------

ServerRequestHandler = Any  # (server request message) -> the client's response message


class Peer(Protocol):
    async def exchange(self, message: dict[str, Any], on_request: ServerRequestHandler = None) -> list[dict[str, Any]]: ...


def _answer_server_request(message: dict[str, Any], on_request: ServerRequestHandler) -> dict[str, Any]:
    assert on_request is not None, f"unexpected server request {message}"
    return on_request(message)


class HttpPeer:
    """A Streamable HTTP client that shows every message of an exchange."""

    def __init__(self, url: str):
        self.url = url
        self.client = httpx.AsyncClient(timeout=ANSWER_TIMEOUT)
        self.session_id: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": VERSION}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    async def post(self, message: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.url, content=orjson.dumps(message), headers=self.headers())

    async def exchange(self, message: dict[str, Any], on_request: ServerRequestHandler = None) -> list[dict[str, Any]]:
        """POST a request; return every message of the answer, answering server requests on the way."""
        seen: list[dict[str, Any]] = []
        async with self.client.stream("POST", self.url, content=orjson.dumps(message), headers=self.headers()) as response:
            if response.status_code != 200 or response.headers.get("content-type", "").startswith("application/json"):
                await response.aread()
                return [response.json()]
            buffer = ""
            async for line in response.aiter_lines():
                buffer += line + "\n"
                if line:
                    continue
                for event in parse_sse(buffer):
                    if event["data"] is None:
                        continue
                    seen.append(event["data"])
                    if "method" in event["data"] and "id" in event["data"]:
                        reply = await self.post(_answer_server_request(event["data"], on_request))
                        assert reply.status_code == 202, reply.text
                buffer = ""
        return seen

    async def close(self) -> None:
        if self.session_id:
            await self.client.delete(self.url, headers=self.headers())
        await self.client.aclose()


class WsPeer:
    """A WebSocket client (subprotocol `mcp`) that shows every message of an exchange."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws

    async def exchange(self, message: dict[str, Any], on_request: ServerRequestHandler = None) -> list[dict[str, Any]]:
        await self.ws.send(orjson.dumps(message).decode())
        seen: list[dict[str, Any]] = []
        while True:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                incoming = orjson.loads(await self.ws.recv())
            seen.append(incoming)
            if "method" in incoming and "id" in incoming:
                await self.ws.send(orjson.dumps(_answer_server_request(incoming, on_request)).decode())
            elif "method" not in incoming and incoming.get("id") == message["id"]:
                return seen


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": CLIENT_CAPABILITIES, "clientInfo": {"name": "passthrough-test", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@asynccontextmanager
async def http_peer(url: str) -> AsyncIterator[HttpPeer]:
    peer = HttpPeer(url)
    try:
        async with peer.client.stream("POST", url, content=orjson.dumps(INITIALIZE), headers=peer.headers()) as response:
            assert response.status_code == 200
            peer.session_id = response.headers["mcp-session-id"]
            await response.aread()
        assert (await peer.post(INITIALIZED)).status_code == 202
        yield peer
    finally:
        await peer.close()


@asynccontextmanager
async def ws_peer(url: str) -> AsyncIterator[WsPeer]:
    async with connect(url, subprotocols=["mcp"], proxy=None) as ws:  # type: ignore[list-item]
        peer = WsPeer(ws)
        await peer.exchange(INITIALIZE)
        await ws.send(orjson.dumps(INITIALIZED).decode())
        yield peer


@asynccontextmanager
async def both(pair: Pair) -> AsyncIterator[tuple[Peer, Peer]]:
    """(through the gateway, straight to the backend), each a fresh session."""
    direct = http_peer(pair.backend.url) if pair.transport == "http" else ws_peer(pair.backend.url)
    async with http_peer(f"{pair.gateway}/mcp") as through, direct as straight:
        yield through, straight


def request(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def tool(name: str, arguments: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments or {}, **extra}


#: Requests whose whole answer must be identical through the gateway and straight from the backend.
SAME_ANSWER = {
    "tools-list": request("tools/list", {}),
    "tools-list-no-params": request("tools/list"),
    "echo": request("tools/call", tool("echo", {"text": "héllo ✓"})),
    "structured": request("tools/call", tool("add", {"a": 2, "b": 40}), id="add-1"),
    "structured-object": request("tools/call", tool("meta", _meta={"custom": {"k": [1, 2]}, "other": None}), id=7),
    "is-error": request("tools/call", tool("fail", {"message": "boom"}), id=2**53 - 1),
    "invalid-arguments": request("tools/call", tool("echo", {"text": 5, "extra": True}), id=-3),
    "unknown-tool": request("tools/call", tool("no_such_tool"), id=0),
    "prompts-list": request("prompts/list", {}),
    "prompt": request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}}),
    "unknown-prompt": request("prompts/get", {"name": "nope", "arguments": {}}, id="p-err"),
    "resources-list": request("resources/list", {}),
    "templates-list": request("resources/templates/list", {}),
    "resource": request("resources/read", {"uri": "info://solo"}),
    "template-resource": request("resources/read", {"uri": "items://solo/apple"}),
    "unknown-resource": request("resources/read", {"uri": "info://nowhere"}, id="r-err"),
    "completion": request(
        "completion/complete",
        {"ref": {"type": "ref/resource", "uri": "items://solo/{item_id}"}, "argument": {"name": "item_id", "value": "b"}},
    ),
    "unknown-method": request("frobnicate/now", {}, id="m-err"),
    "progress": request("tools/call", tool("progress", {"steps": 3}, _meta={"progressToken": "tok-1"}), id="prog"),
    "log": request("tools/call", tool("log", {"message": "hello", "level": "warning"}), id="log"),
    "ping": request("ping", id="pp"),
}


#: What the gateway adds on purpose: W3C trace context, propagated to the backend in `_meta`
#: (the `meta` tool echoes it back). Session-dependent by nature.
TRACE_CONTEXT = frozenset({"traceparent", "tracestate", "baggage"})


def without_trace_context(value: Any) -> Any:
    """`value` with trace-context keys removed at any depth, including inside JSON tool text."""
    if isinstance(value, dict):
        cleaned = {k: without_trace_context(v) for k, v in value.items() if k not in TRACE_CONTEXT}
        if cleaned.get("type") == "text" and isinstance(cleaned.get("text"), str) and cleaned["text"].startswith("{"):
            try:
                cleaned["text"] = without_trace_context(orjson.loads(cleaned["text"]))
            except orjson.JSONDecodeError:
                pass
        return cleaned
    if isinstance(value, list):
        return [without_trace_context(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(SAME_ANSWER))
async def test_answers_are_exactly_the_backends(pair: Pair, name: str) -> None:
    message = SAME_ANSWER[name]
    async with both(pair) as (through, straight):
        expected = await straight.exchange(copy.deepcopy(message))
        actual = await through.exchange(copy.deepcopy(message))
    if name == "structured-object":
        actual, expected = without_trace_context(actual), without_trace_context(expected)
    assert actual == expected
    assert actual[-1]["id"] == message["id"]


async def test_tool_schemas_and_annotations_are_untouched(pair: Pair) -> None:
    async with both(pair) as (through, straight):
        expected = (await straight.exchange(request("tools/list", {})))[-1]["result"]["tools"]
        actual = (await through.exchange(request("tools/list", {})))[-1]["result"]["tools"]
    assert actual == expected
    by_name = {t["name"]: t for t in actual}
    assert by_name["add"]["outputSchema"]["properties"]["result"]["type"] == "integer"


async def test_server_to_client_requests_pass_through(pair: Pair) -> None:
    """The sampling request reaches the client as the backend sent it, and the client's answer
    reaches the backend."""
    asked: dict[str, list[dict[str, Any]]] = {"through": [], "straight": []}

    def answerer(where: str) -> ServerRequestHandler:
        def on_request(message: dict[str, Any]) -> dict[str, Any]:
            asked[where].append(message)
            return {"jsonrpc": "2.0", "id": message["id"], "result": SAMPLING_ANSWER}

        return on_request

    call = request("tools/call", tool("sample", {"prompt": "hi"}), id="s1")
    async with both(pair) as (through, straight):
        expected = await straight.exchange(copy.deepcopy(call), answerer("straight"))
        actual = await through.exchange(copy.deepcopy(call), answerer("through"))
    assert actual[-1] == expected[-1] and actual[-1]["result"]["content"][0]["text"] == "sampled"
    [seen_through], [seen_straight] = asked["through"], asked["straight"]
    if pair.transport == "ws":
        # The gateway's one WebSocket to the backend is shared: the backend numbers its requests
        # per connection, so only the id depends on what else that connection carried.
        seen_through = {**seen_through, "id": seen_straight["id"]}
    assert seen_through == seen_straight


# -- an unprefixed namespace among prefixed ones --------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mixed")
    plain = start_backend("plain", workdir, "http")
    try:
        gateway = start_gateway(
            {
                "namespaces": {
                    "pre": {"backends": [{"name": "pre-1", "command": stdio_command("pre")}]},
                    "plain": {"prefix": False, "backends": [{"name": "plain-1", "url": plain.url}]},
                }
            },
            workdir,
        )
    except BaseException:
        plain.proc.stop()
        raise
    yield f"{gateway.url}/mcp"
    gateway.proc.stop()
    plain.proc.stop()


def result_text(messages: list[dict[str, Any]]) -> str:
    final = messages[-1]
    assert "result" in final, final
    result = final["result"]
    if "content" in result:
        return result["content"][0]["text"]
    if "contents" in result:
        return result["contents"][0]["text"]
    return result["messages"][0]["content"]["text"]


async def test_unprefixed_names_route_before_any_list(mixed: str) -> None:
    async with http_peer(mixed) as peer:
        assert result_text(await peer.exchange(request("tools/call", tool("whoami")))) == "plain"
        assert result_text(await peer.exchange(request("tools/call", tool("pre__whoami")))) == "pre"


async def test_unprefixed_namespace_among_prefixed_ones(mixed: str) -> None:
    async with http_peer(mixed) as peer:
        tools = {t["name"] for t in (await peer.exchange(request("tools/list", {})))[-1]["result"]["tools"]}
        assert {"echo", "whoami", "pre__echo", "pre__whoami"} <= tools
        assert not any(name.startswith("plain__") for name in tools)
        prompts = {p["name"] for p in (await peer.exchange(request("prompts/list", {})))[-1]["result"]["prompts"]}
        assert {"greet", "pre__greet"} <= prompts

        assert result_text(await peer.exchange(request("tools/call", tool("whoami"), id="w1"))) == "plain"
        assert result_text(await peer.exchange(request("tools/call", tool("pre__whoami"), id="w2"))) == "pre"
        assert "plain" in result_text(await peer.exchange(request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})))
        assert "pre" in result_text(await peer.exchange(request("prompts/get", {"name": "pre__greet", "arguments": {"name": "Ada"}})))
        assert result_text(await peer.exchange(request("resources/read", {"uri": "info://plain"}))) == "This is test server plain."
        assert result_text(await peer.exchange(request("resources/read", {"uri": "info://pre"}))) == "This is test server pre."

        # The prefixed namespace's names are not reachable bare, nor the unprefixed one's prefixed.
        answer = (await peer.exchange(request("tools/call", tool("plain__whoami"), id="w3")))[-1]
        assert answer.get("result", {}).get("isError") is True or answer.get("error", {}).get("code") == -32602, answer
        # A bare name the unprefixed backend does not know is its answer to give.
        unknown = (await peer.exchange(request("tools/call", tool("no_such_tool"), id="w4")))[-1]
        assert unknown["result"]["isError"] is True and "no_such_tool" in unknown["result"]["content"][0]["text"]
