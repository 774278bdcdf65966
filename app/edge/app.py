"""The ASGI application: the routes of every edge (built by `app.assembly`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app import __version__
from app.edge.http import StreamableHttp, json_response
from app.edge.probes import Probes
from app.edge.websocket import WebSocketEdge
from app.pipeline.drain import Drain
from app.telemetry import ConnectionMetrics


def _without_native_telemetry() -> dict[str, Any]:
    """FastAPI (0.16x and later) instruments itself once OpenTelemetry providers exist: an HTTP span
    per request and per WebSocket connection, spans for dependencies and endpoints, HTTP metrics.
    The gateway records its edges itself, with the names of docs/telemetry.md (one
    `gateway.handleRequest` server span per JSON-RPC request), so FastAPI's is turned off: no
    second server span per request, no per-request overhead for spans nobody asked for."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}}


class GatewayApp:
    """The ASGI entry point: `/mcp` goes straight to the Streamable HTTP handler, everything else
    (WebSocket, health, lifespan) to FastAPI; connections on both edges are counted around it.

    Why not a FastAPI route: `/mcp` is the hot path and uses nothing of the framework (a raw
    request in, a response out), while the framework's per-request stack (error, body-limit,
    exit-stack and exception middleware, the router) cost 4 % of the gateway's instructions per
    call (docs/performance.md)."""

    def __init__(self, framework: FastAPI, http: StreamableHttp, drain: Drain, relayed: Callable[[Scope], bool]):
        self.framework = framework
        #: What `serve` drains on shutdown.
        self.drain = drain
        self._handlers = {"POST": http.post, "GET": http.get, "DELETE": http.delete}
        self._asgi = ConnectionMetrics(self._route, relayed=relayed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await self.framework(scope, receive, send)
            return
        handler = self._handlers.get(scope["method"])
        if handler is None:
            response: Response = Response("Method Not Allowed", 405, {"Allow": ", ".join(self._handlers)})
        else:
            response = await handler(Request(scope, receive))
        await response(scope, receive, send)


def web_app(
    *,
    http: StreamableHttp,
    websocket: WebSocketEdge,
    probes: Probes,
    drain: Drain,
    relayed: Callable[[Scope], bool],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> GatewayApp:
    """The ASGI app over the edges: `/mcp`, `/ws`, `/health`, `/healthz`, `/readyz`."""
    app = FastAPI(
        title="MCP Gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **_without_native_telemetry(),
    )

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await websocket.serve(socket)

    @app.get("/health")
    async def health() -> Response:
        payload, status = await probes.health()
        return json_response(payload, status)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "alive"})

    @app.get("/readyz")
    async def readyz() -> Response:
        payload, status = await probes.readiness()
        return json_response(payload, status)

    return GatewayApp(app, http, drain, relayed)
