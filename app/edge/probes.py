"""Health endpoints: `/health` (the operations guide's payload), `/healthz` (liveness), `/readyz`."""

from __future__ import annotations

from typing import Any

from app.core.jsonrpc import GatewayError
from app.pipeline.gateway import Gateway


def namespace_status(gateway: Gateway) -> dict[str, str]:
    """`healthy` when every replica answers, `degraded` when some do, `unhealthy` when none do."""
    statuses = {}
    for name, ns in gateway.namespaces.items():
        up = sum(1 for r in ns.replicas if r.healthy)
        statuses[name] = "healthy" if up == len(ns.replicas) else "degraded" if up else "unhealthy"
    return statuses


async def health_payload(gateway: Gateway) -> tuple[dict[str, Any], int]:
    store_ok = await gateway.store.ping()
    backends = namespace_status(gateway)
    redis = ("connected" if store_ok else "disconnected") if gateway.config.redis_url else "not_configured"
    sessions = 0
    if store_ok:
        try:
            sessions = await gateway.store.count_sessions()
        except GatewayError:  # Lost between the ping and the count.
            store_ok = False
    if not store_ok or all(s == "unhealthy" for s in backends.values()):
        status, code = "unhealthy", 503
    elif any(s != "healthy" for s in backends.values()):
        status, code = "degraded", 200
    else:
        status, code = "healthy", 200
    return {"status": status, "backends": backends, "redis": redis, "sessions_active": sessions}, code


async def readiness(gateway: Gateway) -> tuple[dict[str, Any], int]:
    """Ready once start-up discovery has run and the state store answers; not while draining."""
    store_ok = await gateway.store.ping()
    ready = gateway.ready and store_ok and not gateway.drain.draining
    payload = {
        "ready": ready,
        "state_store": "ok" if store_ok else "unreachable",
        "draining": gateway.drain.draining,
        "in_flight": gateway.drain.in_flight,
    }
    return payload, 200 if ready else 503
