"""Active health checks: an MCP `ping` to every backend replica on an interval.

A Streamable HTTP replica is pinged in an upstream session of its own, opened once and re-opened
when the backend forgets it (404); a connection-scoped replica (WebSocket, stdio) is pinged on its
shared connection, which also reconnects (or restarts the process) when it is gone. The result
sets `Replica.healthy` (which `/health` reports and replica choice prefers), the
`mcp_gateway_backend_health{namespace, backend}` gauge, and, while a replica's circuit is not
closed, serves as the breaker's half-open probe: a replica that comes back closes its circuit
without waiting for a client to risk a call. While the circuit is closed a failed ping does not
count against it: a slow ping must not cut off calls that are allowed to take longer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from contextlib import aclosing

from app import telemetry
from app.backends import BackendFailure, Handshake, UpstreamSessionGone
from app.backends.multiplexed import GATEWAY_HANDSHAKE
from app.config import HealthCheckConfig
from app.core.jsonrpc import GatewayError, is_response
from app.pipeline.breaker import State
from app.pipeline.replica import Replica

log = logging.getLogger("mcp_gateway.health_checks")

#: The longest shutdown waits for the health-check sessions' DELETEs.
CLOSE_TIMEOUT_SECONDS = 2.0

#: How the gateway introduces itself in its health-check sessions.
HEALTH_HANDSHAKE = Handshake(
    GATEWAY_HANDSHAKE.protocol_version,
    {},
    {"name": "mcp-gateway-health-check", "version": GATEWAY_HANDSHAKE.client_info.get("version", "0")},
)


class _Probe:
    """One replica's checker and its health-check upstream session (HTTP only)."""

    def __init__(self, replica: Replica):
        self.replica = replica
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.opened = False
        self.ids = itertools.count(1)
        #: The ping in flight. A check that gives up waiting does not cancel it: cancelling would
        #: abandon a connection's handshake (a stdio server's cold start) and start over forever;
        #: the next check waits for the same ping instead of sending another.
        self.pending: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        opened = await self.replica.client.open_session(HEALTH_HANDSHAKE, {})
        self.session_id, self.protocol_version, self.opened = opened.session_id, opened.protocol_version, True

    async def _ping_once(self) -> None:
        if not self.opened:
            await self._open()
        message = {"jsonrpc": "2.0", "id": f"gateway-health-{next(self.ids)}", "method": "ping"}
        async with aclosing(self.replica.client.request(self.session_id, self.protocol_version, message, {}, "")) as events:
            async for event in events:
                if event.message is not None and is_response(event.message) and event.message.get("id") == message["id"]:
                    return  # Any answer, even an error, means the server is there and speaking MCP.
        raise self.replica.client.failure("no answer to ping")

    async def ping(self) -> None:
        """Raise when the replica does not answer; re-open a forgotten session once."""
        try:
            await self._ping_once()
        except UpstreamSessionGone:
            self.opened = False
            await self._ping_once()
        except BaseException:
            if not self.replica.shared_session:
                self.opened = False  # Start over next time (the process may have been replaced).
            raise

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.gather(self.pending, return_exceptions=True)
        if self.opened and self.session_id:
            await self.replica.client.end_session(self.session_id, self.protocol_version)
        self.opened = False


class HealthChecker:
    """Pings every replica every `interval_seconds`; one task per replica, so a hung replica
    delays nobody else."""

    def __init__(self, replicas: Iterable[Replica], settings: HealthCheckConfig):
        self.settings = settings
        self.probes = [_Probe(b) for b in replicas]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.settings.enabled and not self._tasks:
            self._tasks = [asyncio.create_task(self._run(probe), name=f"health-{probe.replica.name}") for probe in self.probes]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:  # Goodbyes to the health-check sessions, best effort: never hold up a shutdown.
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await asyncio.gather(*(probe.close() for probe in self.probes), return_exceptions=True)
        except TimeoutError:
            pass

    async def _run(self, probe: _Probe) -> None:
        while True:
            await self.check(probe)
            await asyncio.sleep(self.settings.interval_seconds)

    async def check(self, probe: _Probe) -> bool:
        """Ping once; record the result everywhere it is reported. True when healthy."""
        replica = probe.replica
        breaker = replica.breaker
        permit = breaker.acquire() if breaker.state is not State.CLOSED else None
        reason = ""
        if probe.pending is None:
            probe.pending = asyncio.create_task(probe.ping(), name=f"ping-{replica.name}")
        try:
            await asyncio.wait({probe.pending}, timeout=self.settings.timeout_seconds)
        except asyncio.CancelledError:
            if permit is not None:
                permit.release()
            raise
        if not probe.pending.done():
            ok, reason = False, f"no answer to ping within {self.settings.timeout_seconds:g}s"
        else:
            error, probe.pending = probe.pending.exception(), None
            if error is None:
                ok = True
            elif isinstance(error, (BackendFailure, GatewayError)):
                ok, reason = False, error.message
            else:
                ok, reason = False, f"{type(error).__name__}: {error}"
        if permit is not None:
            permit.success() if ok else permit.failure()
        was = replica.healthy
        replica.healthy = ok
        telemetry.backend_health(replica.namespace, replica.name, ok)
        if was is not ok:
            if ok:
                log.info("backend healthy", extra={"namespace": replica.namespace, "backend": replica.name})
            else:
                log.warning("backend unhealthy: %s", reason, extra={"namespace": replica.namespace, "backend": replica.name})
        return ok
