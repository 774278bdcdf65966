"""The bridge process: accept MCPB connections, watch their idleness, drain them on shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from typing import Any

from app import __version__
from app.tcp_bridge import metrics
from app.tcp_bridge.codec import FrameErrorCode, FrameType, encode_frame, encode_json, error_payload
from app.tcp_bridge.config import BridgeConfig
from app.tcp_bridge.connection import (
    LINGER_SECONDS,
    READ_CHUNK,
    WRITE_HIGH_WATER,
    BridgeConnection,
)
from app.tcp_bridge.health import GatewayProbe, overall_status

log = logging.getLogger("mcp_gateway.tcp_bridge")


class Bridge:
    def __init__(self, config: BridgeConfig):
        self.config = config
        self.connections: set[BridgeConnection] = set()
        self.probe = GatewayProbe(config.health_url, config.health_cache_seconds, config.health_timeout)
        self.started = time.monotonic()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        #: Connections without a gateway session yet, by `address_key` (no zero entries).
        self._unauthenticated: Counter[str] = Counter()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): useful with port 0."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.config.host, self.config.port, reuse_address=True)
        self._sweeper = asyncio.create_task(self._sweep())
        host, port = self.address
        log.info("tcp bridge listening", extra={"listen": f"{host}:{port}", "gateway": self.config.gateway_url})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
            connection = BridgeConnection(self, reader, writer)
            refusal = self._refusal(connection)
            if refusal is not None:
                await self._refuse(reader, writer, *refusal)
                return
            self.connections.add(connection)
            self._unauthenticated[connection.address_key] += 1
            try:
                await connection.run()
            finally:
                self.connections.discard(connection)
                if connection.upstream is None:
                    self.forget_unauthenticated(connection)
        finally:
            self._handlers.discard(task)

    def _refusal(self, connection: BridgeConnection) -> tuple[FrameType, bytes] | None:
        """The frame that turns `connection` away, or None to admit it. While draining that is
        `goaway`; over a limit, an Error frame."""
        if self.draining:
            return FrameType.CONTROL, encode_json({"action": "goaway", "reason": "shutdown"})
        if len(self.connections) >= self.config.max_connections:
            limit = self.config.max_connections
            log.warning("connection refused: too many connections", extra={"limit": limit})
            return FrameType.ERROR, error_payload(FrameErrorCode.TOO_MANY_CONNECTIONS, f"limit {limit} reached")
        if self._unauthenticated[connection.address_key] >= self.config.max_unauthenticated_per_address:
            limit = self.config.max_unauthenticated_per_address
            log.warning(
                "connection refused: too many unauthenticated connections from one address",
                extra={"client": connection.client_address, "limit": limit},
            )
            message = f"limit {limit} unauthenticated connections per address reached"
            return FrameType.ERROR, error_payload(FrameErrorCode.TOO_MANY_CONNECTIONS, message)
        return None

    def forget_unauthenticated(self, connection: BridgeConnection) -> None:
        """`connection` got its gateway session (or closed without one): it no longer counts
        against its address's limit. Called once per connection."""
        key = connection.address_key
        self._unauthenticated[key] -= 1
        if self._unauthenticated[key] <= 0:
            del self._unauthenticated[key]

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame_type: FrameType, payload: bytes) -> None:
        """One frame (v1 layout: the client has not spoken yet), then close."""
        writer.write(encode_frame(frame_type, payload))
        metrics.frame(frame_type, metrics.OUTBOUND)
        try:
            if writer.can_write_eof():
                writer.write_eof()
            # Drop what the client sends until it closes (briefly): closing with unread input
            # would reset the connection and could destroy the frame before it is read.
            async with asyncio.timeout(LINGER_SECONDS):
                while await reader.read(READ_CHUNK):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass
        writer.close()

    async def health_status(self, connection: BridgeConnection) -> dict[str, Any]:
        gateway = await self.probe.status()
        return {
            "status": overall_status(gateway, self.draining),
            "gateway": gateway,
            "version": __version__,
            "protocol_version": connection.version,
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "connections": len(self.connections),
        }

    async def _sweep(self) -> None:
        """Close connections with no frame either way and nothing in flight for `idle_timeout`,
        and those still without a gateway session `auth_timeout` after they opened (HealthCheck
        frames keep a connection from idling, not from authenticating)."""
        config = self.config
        interval = min(1.0, config.idle_timeout / 4, config.auth_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.closing or connection.pending:
                    continue
                if connection.upstream is None and now - connection.opened >= config.auth_timeout:
                    log.info("unauthenticated connection closed", extra={"client": connection.client_address})
                    connection.expire(FrameErrorCode.AUTH_TIMEOUT, f"no authenticated request within {config.auth_timeout:g} s")
                elif now - connection.last_activity >= config.idle_timeout:
                    log.info("idle connection closed", extra={"client": connection.client_address})
                    connection.expire(FrameErrorCode.IDLE_TIMEOUT, f"no frame for {config.idle_timeout:g} s")

    async def shutdown(self) -> None:
        """Stop accepting, `goaway` to every connection, let in-flight requests finish within the
        drain timeout, answer the rest with an error, close."""
        if self.draining:
            return
        self.draining = True
        if self._server is not None:
            self._server.close()
        connections = list(self.connections)
        log.info("draining", extra={"connections": len(connections), "drain_timeout_s": self.config.drain_timeout})
        for connection in connections:
            connection.goaway(self.config.drain_timeout)
        pending = [asyncio.ensure_future(c.done.wait()) for c in connections]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.drain_timeout)
            if late:
                for connection in connections:
                    if not connection.done.is_set():
                        await connection.abandon()
                await asyncio.wait(late, timeout=5)
        # Handlers of connections still being refused or set up finish on their own; give them a moment.
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2)
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.probe.close()
        log.info("tcp bridge stopped")


async def run_bridge(config: BridgeConfig, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (the caller flushes telemetry)."""
    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("signal received: shutting down")
        await bridge.shutdown()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
