"""`mcp-gateway serve`: run the gateway."""

from __future__ import annotations

import argparse
import sys

from app.auth import AuthSetupError
from app.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("serve", help="run the gateway", description="Run the MCP gateway.")
    parser.add_argument("--config", help="YAML configuration file (default: $MCP_GATEWAY_CONFIG, else the embedded demo)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; env MCP_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (default 8080; env MCP_GATEWAY_PORT)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure
    from app.server import create_app
    from app.transports.websocket import max_frame_bytes

    configure(args.log_level)
    try:
        config = load_config(args.config, overrides={"host": args.host, "port": args.port})
    except ConfigError as error:
        for problem in error.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    try:
        app = create_app(config)
    except AuthSetupError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=max_frame_bytes(config.max_body_bytes),
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )
    return 0
