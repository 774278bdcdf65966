"""A test backend exercising every MCP feature the gateway must carry, built on the official SDK.

Run: `python tests/servers/everything.py --name NAME [--transport stdio|http|ws] [--host H]
[--port N] [--json-response] [--stateless] [--resumable] [--page-size N] [--extra-tools K]
[--extra-prompts K] [--extra-resources K]`.

NAME shows up in `whoami`, in the `info://NAME` resource and in prompt text, so tests can
tell replicas apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, get_args
from weakref import WeakKeyDictionary

import anyio
from backend_tracing import trace_http_exchanges
from event_store import InMemoryEventStore
from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.prompts import Prompt
from mcp.server.fastmcp.resources import FunctionResource
from mcp.server.lowlevel import NotificationOptions
from mcp.server.session import ServerSession
from pagination import paginate
from pydantic import BaseModel
from starlette.requests import Request

from app.demo.runner import add_transport_arguments, serve

#: The `retry` hint (ms) a resumable server puts on its priming events.
RETRY_MS = 1500
ITEMS = ("apple", "apricot", "banana", "blueberry", "cherry")
ITEMS_TEMPLATE = "items://{server}/{{item_id}}"  # per server: two servers never share it
LOG_LEVELS: tuple[types.LoggingLevel, ...] = get_args(types.LoggingLevel)


class Answer(BaseModel):
    """What `elicit` asks the client's user for."""

    answer: str


def build(
    name: str,
    *,
    json_response: bool = False,
    stateless: bool = False,
    resumable: bool = False,
    page_size: int | None = None,
    extra_tools: int = 0,
    extra_prompts: int = 0,
    extra_resources: int = 0,
) -> FastMCP:
    """The server, with the Streamable HTTP options it is asked for (other transports ignore them)."""
    server = FastMCP(
        name,
        log_level="WARNING",
        json_response=json_response,
        stateless_http=stateless,
        event_store=InMemoryEventStore() if resumable else None,
        retry_interval=RETRY_MS if resumable else None,
    )
    _add_tools(server)
    _add_client_requests(server)
    _add_logging(server)
    _add_prompts_and_resources(server)
    for i in range(extra_tools):
        server.add_tool(_constant(f"t{i}"), name=f"t{i}", description=f"Trivial tool number {i}.")
    for i in range(extra_prompts):
        server.add_prompt(Prompt.from_function(_constant(f"prompt {i}"), name=f"p{i}", description=f"Trivial prompt number {i}."))
    for i in range(extra_resources):
        uri = f"extra://{name}/{i}"
        server.add_resource(FunctionResource.from_function(_constant(f"resource {i}"), uri=uri, name=f"r{i}", mime_type="text/plain"))
    if page_size:
        paginate(server, page_size)
    _advertise_list_changed(server)
    return server


def _add_tools(server: FastMCP) -> None:
    """Tools answering from the server alone (no requests back to the client)."""

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    @server.tool()
    def whoami() -> str:
        """The --name this server was started with."""
        return server.name

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer "done" (for timeouts and cancellation). Its start and its cancellation
        are written to stderr, so tests can see a cancellation arrive."""
        print(f"slow call started ({seconds:g}s)", file=sys.stderr, flush=True)
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            print(f"slow call cancelled ({seconds:g}s)", file=sys.stderr, flush=True)
            raise
        return "done"

    @server.tool()
    def fail(message: str) -> str:
        """Always fail: the result has isError and its text includes `message`."""
        raise ToolError(message)

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Send `steps` progress notifications (when the call has a progressToken), then answer."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        return "done"

    @server.tool()
    def headers(ctx: Context) -> dict[str, str]:
        """Headers of the HTTP request that carried this call; {} over stdio and WebSocket."""
        request = ctx.request_context.request
        return dict(request.headers) if isinstance(request, Request) else {}

    @server.tool()
    def meta(ctx: Context) -> dict[str, Any]:
        """The call's `_meta` (progressToken and anything else the client sent)."""
        request_meta = ctx.request_context.meta
        return request_meta.model_dump(by_alias=True, exclude_none=True) if request_meta else {}

    @server.tool()
    async def change_tools(ctx: Context) -> str:
        """Add a tool `extra_<n>`, send notifications/tools/list_changed, return the new name.

        The notification is not tied to this call, so over Streamable HTTP it travels on
        the session's GET stream.
        """
        new = f"extra_{sum(tool.name.startswith('extra_') for tool in await server.list_tools())}"
        server.add_tool(_constant(new), name=new, description="Added at runtime by change_tools.")
        await ctx.session.send_tool_list_changed()
        return new


def _add_client_requests(server: FastMCP) -> None:
    """Tools that send a request to the client and wait for its answer.

    `sample` and `elicit` tie their request to the tool call, so over Streamable HTTP it goes
    out on the call's own SSE stream; the SDK's `list_roots` takes no related request, so
    `roots` asks on the session's GET stream. Neither can work in stateless mode (the answer
    arrives at a fresh server), and the SDK drops the tied requests in JSON-response mode.
    """

    @server.tool()
    async def sample(prompt: str, ctx: Context) -> str:
        """Ask the client's model (sampling/createMessage) and return its text."""
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=256,
            related_request_id=ctx.request_id,
        )
        content = result.content
        return content.text if isinstance(content, types.TextContent) else content.model_dump_json()

    @server.tool()
    async def elicit(question: str, ctx: Context) -> dict[str, Any]:
        """Ask the client's user (elicitation/create); return {"action", "content"}."""
        result = await ctx.elicit(question, schema=Answer)
        content = result.data.model_dump() if result.action == "accept" else None
        return {"action": result.action, "content": content}

    @server.tool()
    async def roots(ctx: Context) -> list[str]:
        """The URIs the client lists for roots/list."""
        return [str(root.uri) for root in (await ctx.session.list_roots()).roots]


def _add_logging(server: FastMCP) -> None:
    """`logging/setLevel` per session and a `log` tool that honours it."""
    thresholds: WeakKeyDictionary[ServerSession, types.LoggingLevel] = WeakKeyDictionary()
    lowlevel = server._mcp_server  # FastMCP exposes no public handle to its protocol server.

    @lowlevel.set_logging_level()
    async def set_level(level: types.LoggingLevel) -> None:
        thresholds[lowlevel.request_context.session] = level

    @server.tool()
    async def log(message: str, ctx: Context, level: types.LoggingLevel = "info") -> str:
        """Send `message` as a notifications/message at `level` (unless below the session's level)."""
        threshold = thresholds.get(ctx.session, LOG_LEVELS[0])
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
            return "filtered"
        await ctx.session.send_log_message(level, message, logger=server.name, related_request_id=ctx.request_id)
        return "logged"


def _add_prompts_and_resources(server: FastMCP) -> None:
    @server.prompt()
    def greet(name: str) -> str:
        """A one-line greeting."""
        return f"Say hello to {name} on behalf of {server.name}."

    @server.resource(f"info://{server.name}", mime_type="text/plain")
    def info() -> str:
        """Which server this is."""
        return f"This is test server {server.name}."

    items_template = ITEMS_TEMPLATE.format(server=server.name)

    @server.resource(items_template, mime_type="text/plain")
    def item(item_id: str) -> str:
        """One item by id."""
        return f"Item {item_id} from {server.name}."

    @server.completion()
    async def complete(
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.Completion | None:
        """Known item ids for the items template."""
        if not (isinstance(ref, types.ResourceTemplateReference) and ref.uri == items_template):
            return None
        matches = [i for i in ITEMS if i.startswith(argument.value)]
        return types.Completion(values=matches, total=len(matches), hasMore=False)


def _constant(value: str) -> Callable[[], str]:
    """A tool body answering `value` (for tools added in bulk or at runtime)."""

    def tool() -> str:
        return value

    return tool


def _advertise_list_changed(server: FastMCP) -> None:
    """Declare `tools.listChanged`, since `change_tools` sends that notification.

    FastMCP has no option for it, and every transport (stdio, the HTTP session manager, our
    WebSocket runner) asks the lowlevel server for its initialization options, so the
    options are bound there.
    """
    lowlevel = server._mcp_server  # FastMCP exposes no public handle to its protocol server.
    lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options, NotificationOptions(tools_changed=True)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MCP test backend with every feature")
    parser.add_argument("--name", required=True, help="server name, returned by whoami")
    add_transport_arguments(parser, default_port=8000)
    parser.add_argument("--json-response", action="store_true", help="HTTP: answer POSTs with JSON, not SSE")
    parser.add_argument("--stateless", action="store_true", help="HTTP: no sessions, a fresh server per request")
    parser.add_argument("--resumable", action="store_true", help="HTTP: SSE event ids and Last-Event-ID replay")
    parser.add_argument("--page-size", type=int, default=None, help="paginate tools/prompts/resources lists")
    parser.add_argument("--extra-tools", type=int, default=0, help="add trivial tools t0..t{K-1}")
    parser.add_argument("--extra-prompts", type=int, default=0, help="add trivial prompts p0..p{K-1}")
    parser.add_argument("--extra-resources", type=int, default=0, help="add resources extra://NAME/0..K-1")
    args = parser.parse_args(argv)
    server = build(
        args.name,
        json_response=args.json_response,
        stateless=args.stateless,
        resumable=args.resumable,
        page_size=args.page_size,
        extra_tools=args.extra_tools,
        extra_prompts=args.extra_prompts,
        extra_resources=args.extra_resources,
    )
    trace_http_exchanges(server)  # Only with EVERYTHING_OTLP_ENDPOINT set (tracing tests).
    serve(server, args.transport, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
