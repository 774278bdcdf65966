"""The ASGI application: routes of every edge, and the gateway's lifecycle."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app import __version__
from app.config import GatewayConfig
from app.edge.http import StreamableHttp, json_response
from app.edge.origin import OriginPolicy
from app.edge.probes import health_payload, readiness
from app.edge.websocket import serve_websocket
from app.pipeline.gateway import Gateway
from app.state import open_store
from app.telemetry import ConnectionMetrics, Telemetry, instruments

log = logging.getLogger("mcp_gateway")


def _without_native_telemetry() -> dict[str, Any]:
    """FastAPI (0.16x and later) instruments itself once OpenTelemetry providers exist: an HTTP span
    per request and per WebSocket connection, spans for dependencies and endpoints, HTTP metrics.
    The gateway records its edges itself, with the operations guide's names (one
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

    def __init__(self, framework: FastAPI, gateway: Gateway, http: StreamableHttp):
        self.framework = framework
        self.gateway = gateway
        self._handlers = {"POST": http.post, "GET": http.get, "DELETE": http.delete}
        self._asgi = ConnectionMetrics(self._route, relayed=gateway.clients.relayed)

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


def create_app(config: GatewayConfig, telemetry: Telemetry | None = None) -> GatewayApp:
    """The app; `telemetry` (from `app.telemetry.setup`) is flushed and closed when it stops."""
    gateway = Gateway(config, open_store(config.redis_url, config.session_ttl_seconds))
    policy = OriginPolicy(config)
    http = StreamableHttp(gateway, policy)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Discovery runs in the background: the process answers /healthz at once and /readyz
        # turns 200 when backends have been asked for their capabilities.
        starting = asyncio.create_task(gateway.start())
        unwatch = instruments().watch_backends(lambda: [(r.namespace, r.name, r.healthy) for r in gateway.replicas])
        log.info("gateway starting", extra={"host": config.host, "port": config.port, "namespaces": list(config.namespaces)})
        try:
            yield
        finally:
            starting.cancel()
            unwatch()
            await gateway.close()
            log.info("gateway stopped")
            if telemetry is not None:
                telemetry.shutdown()  # Spans, a final metrics export and logs, before the process exits.

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
    async def ws(websocket: WebSocket) -> None:
        await serve_websocket(gateway, policy, websocket)

    @app.get("/health")
    async def health() -> Response:
        payload, status = await health_payload(gateway)
        return json_response(payload, status)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "alive"})

    @app.get("/readyz")
    async def readyz() -> Response:
        payload, status = await readiness(gateway)
        return json_response(payload, status)

    return GatewayApp(app, gateway, http)
