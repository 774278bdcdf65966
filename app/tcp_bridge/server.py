"""The bridge process: accept MCPB connections, watch their idleness, drain them on shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from app import __version__
from app.tcp_bridge import metrics
from app.tcp_bridge.codec import ErrorCode, FrameType, encode_frame, encode_json
from app.tcp_bridge.config import BridgeConfig
from app.tcp_bridge.connection import LINGER_SECONDS, READ_CHUNK, WRITE_HIGH_WATER, BridgeConnection
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

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): useful with port 0."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.config.host, self.config.port, reuse_address=True)
        self._sweeper = asyncio.create_task(self._sweep_idle())
        host, port = self.address
        log.info("tcp bridge listening", extra={"listen": f"{host}:{port}", "gateway": self.config.gateway_url})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
            if self.draining or len(self.connections) >= self.config.max_connections:
                await self._refuse(reader, writer)
                return
            connection = BridgeConnection(self, reader, writer)
            self.connections.add(connection)
            try:
                await connection.run()
            finally:
                self.connections.discard(connection)
        finally:
            self._handlers.discard(task)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Over the connection limit: one Error frame (v1 layout: the client has not spoken yet),
        then close. A connection that slips in while draining gets `goaway` instead."""
        if self.draining:
            frame_type, payload = FrameType.CONTROL, encode_json({"action": "goaway", "reason": "shutdown"})
        else:
            log.warning("connection refused: too many connections", extra={"limit": self.config.max_connections})
            frame_type = FrameType.ERROR
            payload = f"{ErrorCode.TOO_MANY_CONNECTIONS.value}: limit {self.config.max_connections} reached".encode()
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

    async def _sweep_idle(self) -> None:
        """Close connections with no frame either way and nothing in flight for `idle_timeout`."""
        interval = min(1.0, self.config.idle_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections):
                if (
                    not connection.closing
                    and not connection.pending
                    and now - connection.last_activity >= self.config.idle_timeout
                ):
                    log.info("idle connection closed", extra={"client": connection.client_address})
                    connection.expire_idle()

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
