"""The composition root: everything the gateway is made of, built from the configuration in one
place, and each edge handed exactly what it needs. No other module builds a component of another
layer; the pipeline and the edges receive theirs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from app.auth import Authenticator
from app.backends.multiplexed import MultiplexedBackend
from app.config import GatewayConfig
from app.edge.app import GatewayApp, web_app
from app.edge.client_address import ClientResolver
from app.edge.http import StreamableHttp
from app.edge.origin import OriginPolicy
from app.edge.probes import Probes
from app.edge.services import EdgeServices
from app.edge.websocket import WebSocketEdge
from app.pipeline.catalogue import Catalogue
from app.pipeline.context import RequestContext
from app.pipeline.discovery import Discovery
from app.pipeline.dispatch import Pipeline
from app.pipeline.drain import Drain
from app.pipeline.expiry import ExpirySweeper
from app.pipeline.health_checks import HealthChecker
from app.pipeline.hub import Bindings, Hub
from app.pipeline.in_flight import InFlight
from app.pipeline.lifecycle import Lifecycle
from app.pipeline.ratelimit import RateLimiter
from app.pipeline.relay import Relay
from app.pipeline.replica import build_replicas
from app.pipeline.routing import Namespace, Router
from app.pipeline.sessions import Sessions
from app.pipeline.streams import Streams
from app.pipeline.targets import Targets
from app.pipeline.upstreams import Upstreams
from app.state import StateStore, open_store
from app.telemetry import Telemetry, current_instruments

log = logging.getLogger("mcp_gateway")


def build_namespaces(config: GatewayConfig) -> dict[str, Namespace]:
    """Every configured namespace with its replicas (client and breaker each)."""
    return {
        name: Namespace(name, ns.prefix, build_replicas(name, ns, config.breaker), ns.balance) for name, ns in config.namespaces.items()
    }


def build_pipeline(
    config: GatewayConfig, store: StateStore, namespaces: dict[str, Namespace], hub: Hub, limiter: RateLimiter
) -> tuple[Pipeline, Lifecycle]:
    """The pipeline's steps over the given namespaces, wired together, and what starts and stops them."""
    replicas = [r for ns in namespaces.values() for r in ns.replicas]
    router = Router(namespaces, config.tool_separator)
    only = router.single
    passthrough = only is not None and not only.prefix and len(only.replicas) == 1
    bindings = Bindings()
    upstreams = Upstreams(store, config.replica_down_seconds, bindings)
    in_flight = InFlight()
    catalogue = Catalogue(router, upstreams)
    relay = Relay(store, upstreams, in_flight, passthrough, list_changed=catalogue.forget)
    targets = Targets(router, passthrough, catalogue.learn_name, catalogue.learn_uri)
    discovery = Discovery(namespaces)
    streams = Streams(store, namespaces, hub, bindings, relay, list_changed=catalogue.forget)

    async def rate_limit(ctx: RequestContext) -> None:
        await limiter.check(ctx.principal, ctx.client_address, None)

    sessions = Sessions(store, namespaces, discovery, upstreams, relay, rate_limit, config.max_sessions_per_principal)
    for replica in replicas:
        if isinstance(replica.client, MultiplexedBackend):
            replica.client.deliver = partial(streams.deliver_unsolicited, replica.namespace)
    pipeline = Pipeline(
        store=store,
        namespaces=namespaces,
        limiter=limiter,
        upstreams=upstreams,
        in_flight=in_flight,
        targets=targets,
        catalogue=catalogue,
        relay=relay,
        sessions=sessions,
        streams=streams,
    )
    lifecycle = Lifecycle(replicas, discovery, HealthChecker(replicas, config.health_checks), ExpirySweeper(store, sessions.ended))
    return pipeline, lifecycle


def assemble(config: GatewayConfig, telemetry: Telemetry | None = None) -> GatewayApp:
    """The ASGI app; `telemetry` (from `app.telemetry.setup`) is flushed and closed when it stops."""
    store = open_store(config.redis_url, config.session_ttl_seconds)
    auth = Authenticator(config.auth)
    clients = ClientResolver(config.trusted_proxies)
    policy = OriginPolicy(config)
    drain = Drain()
    hub = Hub()
    limiter = RateLimiter.from_config(config)
    namespaces = build_namespaces(config)
    pipeline, lifecycle = build_pipeline(config, store, namespaces, hub, limiter)
    services = EdgeServices(pipeline, policy, clients, auth, drain, config.max_body_bytes)
    http = StreamableHttp(services, max_streams_per_principal=config.max_streams_per_principal)
    websocket = WebSocketEdge(
        services, hub=hub, max_in_flight_per_connection=config.max_in_flight_per_connection, session_ttl=store.session_ttl
    )
    probes = Probes(store, namespaces, drain, redis_configured=bool(config.redis_url), started=lambda: lifecycle.ready)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Discovery runs in the background: the process answers /healthz at once and /readyz
        # turns 200 when backends have been asked for their capabilities.
        starting = asyncio.create_task(lifecycle.start())
        unwatch = current_instruments().watch_backends(lambda: [(r.namespace, r.name, r.healthy) for r in lifecycle.replicas])
        log.info("gateway starting", extra={"host": config.host, "port": config.port, "namespaces": list(config.namespaces)})
        try:
            yield
        finally:
            starting.cancel()
            unwatch()
            await lifecycle.close()
            await limiter.close()
            await auth.close()
            await store.close()
            log.info("gateway stopped")
            if telemetry is not None:
                telemetry.shutdown()  # Spans, a final metrics export and logs, before the process exits.

    return web_app(http=http, websocket=websocket, probes=probes, drain=drain, relayed=clients.relayed, lifespan=lifespan)
