"""`mcp-gateway bridge` (and `python -m app.tcp_bridge`): run the MCPB TCP bridge."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from app.tcp_bridge.config import (
    DEFAULT_GATEWAY,
    DEFAULT_LISTEN,
    DEFAULT_METRICS_PORT,
    BridgeConfig,
    normalize_gateway_url,
    parse_listen,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--listen",
        default=env("MCP_BRIDGE_LISTEN", DEFAULT_LISTEN),
        help=f"HOST:PORT to accept MCPB connections on (default {DEFAULT_LISTEN}, loopback; 0.0.0.0:8445 for all interfaces; env MCP_BRIDGE_LISTEN)",
    )
    parser.add_argument(
        "--gateway",
        default=env("MCP_BRIDGE_GATEWAY", DEFAULT_GATEWAY),
        help=f"the gateway's WebSocket endpoint (default {DEFAULT_GATEWAY}; env MCP_BRIDGE_GATEWAY)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=env("MCP_BRIDGE_METRICS_PORT", str(DEFAULT_METRICS_PORT)),  # a string: argparse converts it when used
        help=f"Prometheus scrape port, 0 turns it off (default {DEFAULT_METRICS_PORT}; env MCP_BRIDGE_METRICS_PORT)",
    )
    parser.add_argument(
        "--metrics-host",
        default=env("MCP_BRIDGE_METRICS_HOST"),
        help="address the scrape endpoint binds (default: the --listen host, as the gateway's metrics follow its host; env MCP_BRIDGE_METRICS_HOST)",
    )
    defaults = BridgeConfig()
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections, help="open connections (default %(default)s)")
    parser.add_argument(
        "--max-unauthenticated-per-address",
        type=int,
        default=env("MCP_BRIDGE_MAX_UNAUTHENTICATED_PER_ADDRESS", str(defaults.max_unauthenticated_per_address)),
        help="connections from one address (IPv6: one /64) without a gateway session yet (default %(default)s; env MCP_BRIDGE_MAX_UNAUTHENTICATED_PER_ADDRESS)",
    )
    parser.add_argument(
        "--auth-timeout",
        type=float,
        default=env("MCP_BRIDGE_AUTH_TIMEOUT", str(defaults.auth_timeout)),
        help="seconds a connection may stay without a gateway session; HealthCheck frames do not extend it (default %(default)s; env MCP_BRIDGE_AUTH_TIMEOUT)",
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=defaults.max_in_flight, help="requests in flight per connection (default %(default)s)"
    )
    parser.add_argument("--max-frame-bytes", type=int, default=defaults.max_frame_bytes, help="largest frame payload (default %(default)s)")
    parser.add_argument(
        "--upstream-max-message-bytes",
        type=int,
        default=defaults.upstream_max_message_bytes,
        help="largest message the gateway accepts on /ws, its max_body_bytes (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=defaults.idle_timeout, help="seconds without a frame before closing (default %(default)s)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        help="seconds in-flight requests get on SIGTERM (default %(default)s)",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=defaults.write_timeout,
        help="seconds a client may leave its frames unread (default %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "bridge",
        help="run the MCPB TCP bridge in front of a gateway",
        description="Accept MCPB (binary-framed MCP over TCP) connections and relay them to the gateway's WebSocket endpoint.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> BridgeConfig:
    host, port = parse_listen(args.listen)
    for name in ("max_connections", "max_unauthenticated_per_address", "max_in_flight", "max_frame_bytes", "upstream_max_message_bytes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("idle_timeout", "auth_timeout", "drain_timeout", "write_timeout"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.metrics_port <= 65535:
        raise ValueError("--metrics-port must be 0..65535")
    return BridgeConfig(
        host=host,
        port=port,
        gateway_url=normalize_gateway_url(args.gateway),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host or host,
        max_connections=args.max_connections,
        max_unauthenticated_per_address=args.max_unauthenticated_per_address,
        auth_timeout=args.auth_timeout,
        max_in_flight=args.max_in_flight,
        max_frame_bytes=args.max_frame_bytes,
        upstream_max_message_bytes=args.upstream_max_message_bytes,
        idle_timeout=args.idle_timeout,
        drain_timeout=args.drain_timeout,
        write_timeout=args.write_timeout,
    )


def run(args: argparse.Namespace) -> int:
    from app.tcp_bridge import metrics
    from app.tcp_bridge.server import run_bridge
    from app.telemetry import TelemetryError
    from app.telemetry.logs import configure

    configure(args.log_level, service=metrics.SERVICE)
    try:
        config = build_config(args)
        metrics.start(config.metrics_port, config.metrics_host)
    except (ValueError, TelemetryError) as error:
        print(f"bridge: {error}", file=sys.stderr)
        return 2
    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
            asyncio.run(run_bridge(config))
        else:
            uvloop.run(run_bridge(config))
    finally:
        metrics.shutdown()  # flush spans and metrics before exit
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tcp_bridge", description="Run the MCPB TCP bridge.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
