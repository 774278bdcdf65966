"""The official MCP SDK as a client of the gateway, with real SDK backends over Streamable HTTP,
WebSocket and stdio behind it: what an MCP host application experiences."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.context import RequestContext

from tests.support import (
    Backend,
    RedisServer,
    start_backend,
    start_gateway,
    stdio_command,
)

TRANSPORT_NAMESPACES = ("web", "sock", "local")  # Streamable HTTP, WebSocket, stdio


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three namespaces' backend configuration (one backend process per network transport)."""
    workdir = tmp_path_factory.mktemp("sdk-backends")
    web: Backend = start_backend("web", workdir, "http")
    sock: Backend = start_backend("sock", workdir, "ws")
    yield {
        "web": {"backends": [{"name": "web-1", "url": web.url}]},
        "sock": {"backends": [{"name": "sock-1", "url": sock.url}]},
        "local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]},
    }
    for proc in (web.proc, sock.proc):
        proc.stop()


def _gateway(backends: dict[str, Any], workdir: Any, **settings: Any) -> Iterator[str]:
    gateway = start_gateway({**settings, "namespaces": backends}, workdir)
    yield f"{gateway.url}/mcp"
    gateway.proc.stop()


@pytest.fixture(scope="module")
def gateway_url(backends: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _gateway(backends, tmp_path_factory.mktemp("sdk"))


@pytest.fixture(scope="module", params=["memory", "redis"])
def stateful_gateway_url(
    request: pytest.FixtureRequest, backends: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The gateway with its sessions in memory, and with them in Redis (a stale copy of the
    session record is invisible in memory, where every request shares one object)."""
    if request.param == "memory":
        yield request.getfixturevalue("gateway_url")
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    if not redis_server.running:
        redis_server.start()
    yield from _gateway(backends, tmp_path_factory.mktemp("sdk-redis"), redis_url=redis_server.url)


class Recorder:
    """Client-side callbacks that answer server requests and remember what arrived."""

    def __init__(self) -> None:
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.notifications: list[Any] = []

    async def sampling(self, ctx: RequestContext[Any, Any], params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"sampled:{prompt}"), model="test-model"
        )

    async def elicitation(self, ctx: RequestContext[Any, Any], params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})

    async def roots(self, ctx: RequestContext[Any, Any]) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///workspace", name="ws")])  # type: ignore[arg-type]

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def messages(self, message: Any) -> None:
        self.notifications.append(message)


@asynccontextmanager
async def connect(url: str, recorder: Recorder | None = None) -> AsyncIterator[ClientSession]:
    recorder = recorder or Recorder()
    async with (
        streamablehttp_client(url) as (read, write, _),
        ClientSession(
            read,
            write,
            sampling_callback=recorder.sampling,
            elicitation_callback=recorder.elicitation,
            list_roots_callback=recorder.roots,
            logging_callback=recorder.logging,
            message_handler=recorder.messages,
        ) as session,
    ):
        await session.initialize()
        yield session


def text(result: types.CallToolResult) -> str:
    assert not result.isError, result
    return result.content[0].text  # type: ignore[union-attr]


async def test_tools_of_every_namespace_are_listed_with_prefixes(gateway_url: str) -> None:
    async with connect(gateway_url) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
    for ns in TRANSPORT_NAMESPACES:
        assert {f"{ns}__echo", f"{ns}__whoami", f"{ns}__sample"} <= names
    assert not any(name == "echo" for name in names)


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_calls_reach_the_backend_over_each_transport(gateway_url: str, ns: str) -> None:
    async with connect(gateway_url) as session:
        assert text(await session.call_tool(f"{ns}__whoami", {})) == ns
        assert text(await session.call_tool(f"{ns}__add", {"a": 2, "b": 40})) == "42"
        failed = await session.call_tool(f"{ns}__fail", {"message": "boom"})
        assert failed.isError and "boom" in failed.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_progress_and_log_notifications_reach_the_client(gateway_url: str, ns: str) -> None:
    recorder = Recorder()
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with connect(gateway_url, recorder) as session:
        await session.call_tool(f"{ns}__progress", {"steps": 3}, progress_callback=on_progress)
        await session.call_tool(f"{ns}__log", {"message": "hello from the backend", "level": "warning"})
    assert seen == [1, 2, 3]
    assert any(entry.data == "hello from the backend" or "hello from the backend" in str(entry.data) for entry in recorder.logs)


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_server_to_client_requests_are_answered_by_the_client(stateful_gateway_url: str, ns: str) -> None:
    """`sample` and `elicit` ask on the call's own stream, `roots` on the standalone (GET) stream."""
    async with connect(stateful_gateway_url) as session:
        with anyio.fail_after(20):
            assert text(await session.call_tool(f"{ns}__sample", {"prompt": "hi"})) == "sampled:hi"
            assert "forty-two" in text(await session.call_tool(f"{ns}__elicit", {"question": "meaning?"}))
            assert "file:///workspace" in text(await session.call_tool(f"{ns}__roots", {}))


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
async def test_a_request_on_the_standalone_stream_from_the_binding_call_arrives(stateful_gateway_url: str, ns: str) -> None:
    """The call that opens the upstream session sends its server request on the GET stream: the
    stream must follow the new upstream session before the backend sends it, not at its next poll."""
    async with connect(stateful_gateway_url) as session:
        with anyio.fail_after(20):
            assert "file:///workspace" in text(await session.call_tool(f"{ns}__roots", {}))


async def test_prompts_resources_and_completion_reach_their_namespace(gateway_url: str) -> None:
    async with connect(gateway_url) as session:
        prompts = {p.name for p in (await session.list_prompts()).prompts}
        assert {"web__greet", "sock__greet", "local__greet"} <= prompts
        prompt = await session.get_prompt("sock__greet", {"name": "Ada"})
        assert "Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]

        uris = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {"info://web", "info://sock", "info://local"} <= uris
        for ns in TRANSPORT_NAMESPACES:
            read = await session.read_resource(f"info://{ns}")  # type: ignore[arg-type]
            assert ns in read.contents[0].text  # type: ignore[union-attr]

        templates = (await session.list_resource_templates()).resourceTemplates
        assert {t.uriTemplate for t in templates} >= {f"items://{ns}/{{item_id}}" for ns in TRANSPORT_NAMESPACES}
        for ns in TRANSPORT_NAMESPACES:
            item = await session.read_resource(f"items://{ns}/banana")  # type: ignore[arg-type]
            assert item.contents[0].text == f"Item banana from {ns}."  # type: ignore[union-attr]
            ref = types.ResourceTemplateReference(type="ref/resource", uri=f"items://{ns}/{{item_id}}")
            completion = await session.complete(ref, {"name": "item_id", "value": "ap"})
            assert set(completion.completion.values) == {"apple", "apricot"}


async def test_a_uri_served_by_two_namespaces_is_a_configuration_error(tmp_path: Any) -> None:
    same = stdio_command("same")
    gateway = start_gateway(
        {"namespaces": {"a": {"backends": [{"name": "a-1", "command": same}]}, "b": {"backends": [{"name": "b-1", "command": same}]}}},
        tmp_path,
    )
    try:
        async with connect(f"{gateway.url}/mcp") as session:
            with pytest.raises(Exception) as failure:
                await session.list_resources()
            assert "Configuration error" in str(failure.value) and "info://same" in str(failure.value)
            assert {"a__echo", "b__echo"} <= {t.name for t in (await session.list_tools()).tools}
    finally:
        gateway.proc.stop()


async def test_list_changed_notifications_pass_through(gateway_url: str) -> None:
    recorder = Recorder()
    async with connect(gateway_url, recorder) as session:
        await session.call_tool("web__change_tools", {})
        with anyio.fail_after(10):
            while not any(  # noqa: ASYNC110 (polling with a deadline: the recorder has no event to wait on)
                isinstance(m, types.ServerNotification) and isinstance(m.root, types.ToolListChangedNotification)
                for m in recorder.notifications
            ):
                await anyio.sleep(0.05)
        names = {tool.name for tool in (await session.list_tools()).tools}
    assert any(name.startswith("web__extra_") for name in names)


async def test_meta_and_arguments_arrive_unchanged(gateway_url: str) -> None:
    async with connect(gateway_url) as session:
        meta = json.loads(text(await session.call_tool("web__meta", {}, meta={"custom": {"k": [1, 2]}})))
    assert meta.get("custom") == {"k": [1, 2]}


async def test_a_sick_namespace_does_not_hide_the_others(tmp_path: Any) -> None:
    gateway = start_gateway(
        {
            "namespaces": {
                "ok": {"backends": [{"name": "ok-1", "command": stdio_command("ok")}]},
                "dead": {"backends": [{"name": "dead-1", "url": "http://127.0.0.1:9/mcp", "timeout_seconds": 2}]},
            }
        },
        tmp_path,
    )
    try:
        async with connect(f"{gateway.url}/mcp") as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert "ok__echo" in names
            with pytest.raises(Exception) as failure:
                await session.call_tool("dead__echo", {"text": "x"})
            assert "dead" in str(failure.value)
            assert text(await session.call_tool("ok__echo", {"text": "still fine"})) == "still fine"
    finally:
        gateway.proc.stop()


async def test_resumable_backends_work_for_sdk_clients(tmp_path: Any) -> None:
    """Priming events, event ids and retry hints pass through without confusing the client."""
    backend = start_backend("res", tmp_path, "http", resumable=True)
    gateway = start_gateway({"namespaces": {"res": {"backends": [{"name": "res-1", "url": backend.url}]}}}, tmp_path)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    try:
        async with connect(f"{gateway.url}/mcp") as session:
            await session.call_tool("res__progress", {"steps": 2}, progress_callback=on_progress)
            assert text(await session.call_tool("res__sample", {"prompt": "p"})) == "sampled:p"
        assert seen == [1, 2]
    finally:
        gateway.proc.stop()
        backend.proc.stop()


@pytest.mark.parametrize("ns", TRANSPORT_NAMESPACES)
def test_server_requests_for_undeclared_capabilities_are_refused(gateway_url: str, ns: str) -> None:
    """A client that declared no `sampling` capability is never sent a sampling request."""
    from tests.support.mcp_http import RawSession, messages

    raw = RawSession(gateway_url.removesuffix("/mcp"))
    raw.initialize(capabilities={})
    response = raw.request("tools/call", {"name": f"{ns}__sample", "arguments": {"prompt": "hi"}})
    relayed = messages(response)
    assert not any(m.get("method") == "sampling/createMessage" for m in relayed)
    result = relayed[-1]["result"]
    assert result["isError"] is True and "sampling" in result["content"][0]["text"]
