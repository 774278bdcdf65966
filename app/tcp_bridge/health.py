"""The gateway's reachability, as HealthCheck answers report it: probed, cached, shared."""

from __future__ import annotations

import asyncio
import time

import httpx

READY = "ready"  #: `/readyz` answered 200
NOT_READY = "not_ready"  #: the gateway answers but is not ready (starting, store down)
UNREACHABLE = "unreachable"  #: nothing answers


class GatewayProbe:
    """GET the gateway's `/readyz` at most once per `cache_seconds`; concurrent askers share one probe."""

    def __init__(self, url: str, cache_seconds: float = 2.0, timeout: float = 1.0):
        self.url = url
        self.cache_seconds = cache_seconds
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._result: str | None = None
        self._checked = 0.0
        self._probe: asyncio.Task[str] | None = None

    async def status(self) -> str:
        if self._result is not None and time.monotonic() - self._checked < self.cache_seconds:
            return self._result
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._check())
        return await asyncio.shield(self._probe)

    async def _check(self) -> str:
        try:
            response = await self._client.get(self.url)
            result = READY if response.status_code == 200 else NOT_READY
        except httpx.HTTPError:
            result = UNREACHABLE
        self._result, self._checked = result, time.monotonic()
        return result

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self._client.aclose()


def overall_status(gateway: str, draining: bool) -> str:
    """The HealthCheck `status`: `healthy` relays can succeed, `degraded` the gateway is not ready,
    `unhealthy` it is unreachable, `draining` the bridge is shutting down (reconnect elsewhere)."""
    if draining:
        return "draining"
    return {READY: "healthy", NOT_READY: "degraded"}.get(gateway, "unhealthy")
