"""`mcp_gateway_connections_total{protocol, state}` for the HTTP and WebSocket edges.

An ASGI middleware, so the transports need not know: an HTTP exchange on an MCP path counts as an
active `http` connection from its start until its response (a streamed SSE answer or the
standalone GET stream included) has ended; a WebSocket counts as an active `websocket` connection
from its accepted handshake until it closes (refused handshakes never count).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.telemetry.state import current_instruments

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACTIVE = "active"


class ConnectionMetrics:
    """Counts connections on `paths` (`/mcp` and `/ws` by default); everything else passes."""

    def __init__(
        self,
        app: ASGIApp,
        http_paths: tuple[str, ...] = ("/mcp",),
        websocket_paths: tuple[str, ...] = ("/ws",),
        relayed: Callable[[Scope], bool] = lambda scope: False,
    ):
        self.app = app
        self.relayed = relayed
        self.http_paths = http_paths
        self.websocket_paths = websocket_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] in self.http_paths:
            gauge = current_instruments()
            gauge.connection_opened("http", ACTIVE)
            try:
                await self.app(scope, receive, send)
            finally:
                gauge.connection_closed("http", ACTIVE)
        elif kind == "websocket" and scope["path"] in self.websocket_paths and not self.relayed(scope):
            # A relay's upstream connection (the TCP bridge's) is counted by the relay, as tcp.
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = current_instruments()
        accepted = False

        async def counting_send(message: Message) -> None:
            nonlocal accepted
            await send(message)
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                gauge.connection_opened("websocket", ACTIVE)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                gauge.connection_closed("websocket", ACTIVE)
