"""One way to run any FastMCP server over stdio, Streamable HTTP or WebSocket.

The demo servers and the test backends share this runner so every server speaks the
same transports at the same path (`/mcp`) with the same defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Literal, get_args

import anyio
import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.websocket import websocket_server
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from app.config import is_loopback

Transport = Literal["stdio", "http", "ws"]
TRANSPORTS: tuple[str, ...] = get_args(Transport)
MCP_PATH = "/mcp"
DEFAULT_HOST = "127.0.0.1"


def add_transport_arguments(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """Add the `--transport/--host/--port` options every server accepts."""
    parser.add_argument("--transport", choices=TRANSPORTS, default="stdio", help="default: stdio")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address for http/ws (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=default_port, help=f"port for http/ws (default: {default_port})")


def main(server: FastMCP, *, default_port: int, argv: Sequence[str] | None = None) -> None:
    """Command line of a server that needs no options beyond the transport."""
    parser = argparse.ArgumentParser(description=f"MCP server {server.name!r}")
    add_transport_arguments(parser, default_port=default_port)
    args = parser.parse_args(argv)
    serve(server, args.transport, host=args.host, port=args.port)


def serve(server: FastMCP, transport: Transport, *, host: str, port: int) -> None:
    """Run `server` until the process is stopped (or stdin closes, for stdio; host and port unused)."""
    if transport == "stdio":
        anyio.run(server.run_stdio_async)
        return
    _listen_on(server, host, port)
    app = server.streamable_http_app() if transport == "http" else websocket_app(server)
    # Warnings and errors only: an access log would bury the lines that explain a failure.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _listen_on(server: FastMCP, host: str, port: int) -> None:
    """Record the listen address, with FastMCP's rule for DNS-rebinding protection.

    FastMCP turns Host/Origin checking on only when constructed with a loopback host. A
    server bound beyond loopback (a container reached as `weather:8001`) cannot know the
    Host its callers will send, so it gets the protection FastMCP would give that host:
    none.
    """
    server.settings.host = host
    server.settings.port = port
    if not is_loopback(host):
        server.settings.transport_security = None


def websocket_app(server: FastMCP) -> Starlette:
    """An ASGI app serving `server` over WebSocket (subprotocol `mcp`) at `/mcp`.

    FastMCP has no WebSocket runner; the SDK's `websocket_server` transport gives the
    streams and the lowlevel server runs one MCP session per connection on them.
    """
    lowlevel = server._mcp_server  # FastMCP exposes no public handle to its protocol server.

    async def endpoint(websocket: WebSocket) -> None:
        try:
            async with websocket_server(websocket.scope, websocket.receive, websocket.send, server.settings.transport_security) as (
                read_stream,
                write_stream,
            ):
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        except ValueError:
            return  # Host/Origin rejected: the SDK has already refused the handshake.

    return Starlette(routes=[WebSocketRoute(MCP_PATH, endpoint)])
