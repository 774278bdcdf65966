"""The composition root: everything the gateway is made of, built from the configuration in one
place, and each edge handed exactly what it needs. No other module builds a component of another
layer; the pipeline and the edges receive theirs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.auth import Authenticator
from app.config import GatewayConfig
from app.edge.app import GatewayApp, web_app
from app.edge.client_address import ClientResolver
from app.edge.http import StreamableHttp
from app.edge.origin import OriginPolicy
from app.edge.probes import Probes
from app.edge.websocket import WebSocketEdge
from app.pipeline.drain import Drain
from app.pipeline.gateway import Gateway
from app.pipeline.hub import Hub
from app.pipeline.ratelimit import RateLimiter
from app.pipeline.replica import build_replicas
from app.pipeline.routing import Namespace
from app.state import open_store
from app.telemetry import Telemetry, instruments

log = logging.getLogger("mcp_gateway")


def build_namespaces(config: GatewayConfig) -> dict[str, Namespace]:
    """Every configured namespace with its replicas (client and breaker each)."""
    return {
        name: Namespace(name, ns.prefix, build_replicas(name, ns, config.breaker), ns.balance) for name, ns in config.namespaces.items()
    }


def assemble(config: GatewayConfig, telemetry: Telemetry | None = None) -> GatewayApp:
    """The ASGI app; `telemetry` (from `app.telemetry.setup`) is flushed and closed when it stops."""
    store = open_store(config.redis_url, config.session_ttl_seconds)
    auth = Authenticator(config.auth)
    clients = ClientResolver(config.trusted_proxies)
    policy = OriginPolicy(config)
    drain = Drain()
    hub = Hub()
    limiter = RateLimiter.from_config(config)
    gateway = Gateway(config, store, build_namespaces(config), hub, limiter)
    http = StreamableHttp(
        gateway,
        policy=policy,
        clients=clients,
        auth=auth,
        drain=drain,
        max_body_bytes=config.max_body_bytes,
        max_streams_per_principal=config.max_streams_per_principal,
    )
    websocket = WebSocketEdge(
        gateway,
        policy=policy,
        clients=clients,
        auth=auth,
        drain=drain,
        hub=hub,
        max_body_bytes=config.max_body_bytes,
        max_in_flight_per_connection=config.max_in_flight_per_connection,
        session_ttl=store.session_ttl,
    )
    probes = Probes(store, gateway.namespaces, drain, redis_configured=bool(config.redis_url), started=lambda: gateway.ready)

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
            await limiter.close()
            await auth.close()
            await store.close()
            log.info("gateway stopped")
            if telemetry is not None:
                telemetry.shutdown()  # Spans, a final metrics export and logs, before the process exits.

    return web_app(http=http, websocket=websocket, probes=probes, drain=drain, relayed=clients.relayed, lifespan=lifespan)
