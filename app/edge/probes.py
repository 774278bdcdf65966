"""Health endpoints: `/health` (the payload docs/telemetry.md describes), `/healthz` (liveness), `/readyz`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.core.jsonrpc import GatewayError
from app.pipeline.drain import Drain
from app.pipeline.routing import Namespace
from app.state import StateStore


def namespace_status(namespaces: Mapping[str, Namespace]) -> dict[str, str]:
    """`healthy` when every replica answers, `degraded` when some do, `unhealthy` when none do."""
    statuses = {}
    for name, ns in namespaces.items():
        up = sum(1 for r in ns.replicas if r.healthy)
        statuses[name] = "healthy" if up == len(ns.replicas) else "degraded" if up else "unhealthy"
    return statuses


class Probes:
    """What the health endpoints read: the state store, the replicas' health, the drain, and
    whether start-up discovery has run."""

    def __init__(
        self, store: StateStore, namespaces: Mapping[str, Namespace], drain: Drain, *, redis_configured: bool, started: Callable[[], bool]
    ):
        self.store = store
        self.namespaces = namespaces
        self.drain = drain
        self.redis_configured = redis_configured
        self.started = started

    async def health(self) -> tuple[dict[str, Any], int]:
        store_ok = await self.store.ping()
        backends = namespace_status(self.namespaces)
        redis = ("connected" if store_ok else "disconnected") if self.redis_configured else "not_configured"
        sessions = 0
        if store_ok:
            try:
                sessions = await self.store.count_sessions()
            except GatewayError:  # Lost between the ping and the count.
                store_ok = False
        if not store_ok or all(s == "unhealthy" for s in backends.values()):
            status, code = "unhealthy", 503
        elif any(s != "healthy" for s in backends.values()):
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        return {"status": status, "backends": backends, "redis": redis, "sessions_active": sessions}, code

    async def readiness(self) -> tuple[dict[str, Any], int]:
        """Ready once start-up discovery has run and the state store answers; not while draining."""
        store_ok = await self.store.ping()
        ready = self.started() and store_ok and not self.drain.draining
        payload = {
            "ready": ready,
            "state_store": "ok" if store_ok else "unreachable",
            "draining": self.drain.draining,
            "in_flight": self.drain.in_flight,
        }
        return payload, 200 if ready else 503
