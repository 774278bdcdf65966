"""`mcp-gateway serve`: run the gateway."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from types import FrameType

import uvicorn

from app.auth import AuthSetupError
from app.config import ConfigError, load_config
from app.demo import sdk_problem as demo_sdk_problem
from app.pipeline.drain import Drain
from app.state.factory import store_problem

#: After the drain, uvicorn's own grace period for connections still open, and time kept for
#: flushing telemetry: together with the drain they fit in `drain_timeout_seconds`.
#: uvicorn takes its grace period in whole seconds.
SHUTDOWN_GRACE_SECONDS = 2
FLUSH_RESERVE_SECONDS = 1.0


class DrainingServer(uvicorn.Server):
    """uvicorn with a drain phase: the first SIGTERM/SIGINT drains (see app.pipeline.drain) while the server
    keeps serving, then shuts down; a second signal exits at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_seconds: float):
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain_then_exit()))

    async def _drain_then_exit(self) -> None:
        await self.drain.run(self.drain_seconds)
        self.should_exit = True


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("serve", help="run the gateway", description="Run the MCP gateway.")
    parser.add_argument("--config", help="YAML configuration file (default: $MCP_GATEWAY_CONFIG, else the embedded demo)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; env MCP_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (default 8080; env MCP_GATEWAY_PORT)")
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus /metrics port (default 9090; 0 turns it off; env MCP_GATEWAY_METRICS_PORT)"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.assembly import assemble
    from app.edge.head import HeadLimits, bounded_http_protocol
    from app.edge.websocket import max_frame_bytes
    from app.telemetry import TelemetryError
    from app.telemetry import setup as setup_telemetry
    from app.telemetry.logs import configure

    configure(args.log_level)
    try:
        config = load_config(args.config, overrides={"host": args.host, "port": args.port, "metrics_port": args.metrics_port})
    except ConfigError as error:
        for line in error.problems:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    problem = demo_sdk_problem(config) or store_problem(config.redis_url)
    if problem:
        print(f"config error: {problem}", file=sys.stderr)
        return 2
    try:
        telemetry = setup_telemetry(
            "mcp-gateway",
            metrics_port=config.metrics_port,
            metrics_host=config.metrics_host or config.host,
            user_label=config.telemetry.user_label,
            certificate_files=config.telemetry.certificate_files,
            flush_timeout=FLUSH_RESERVE_SECONDS,
        )
    except TelemetryError as error:
        print(f"telemetry error: {error}", file=sys.stderr)
        return 2
    try:
        app = assemble(config, telemetry)
    except AuthSetupError as error:
        telemetry.shutdown()
        print(f"config error: {error}", file=sys.stderr)
        return 2
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            http=bounded_http_protocol(HeadLimits(config.max_header_bytes, config.max_header_fields, config.header_timeout_seconds)),
            ws="websockets-sansio",
            ws_max_size=max_frame_bytes(config.max_body_bytes),
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            proxy_headers=False,
        ),
        app.drain,
        max(1.0, config.drain_timeout_seconds - SHUTDOWN_GRACE_SECONDS - FLUSH_RESERVE_SECONDS),
    )
    try:
        server.run()
    finally:
        telemetry.shutdown()  # Already done by the app's shutdown, unless it never started.
    return 0
