"""The benchmark's backend: a minimal FastMCP server (official `mcp` SDK) with one `echo` tool.

Run: `python bench/echo_server.py [--host 127.0.0.1] [--port 9100] [--json-response]`

Streamable HTTP at `/mcp`, stateful sessions, answers as SSE (the SDK's default) unless
`--json-response`. Nothing else is registered, so a `tools/call` costs what the SDK costs.
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.fastmcp import FastMCP


def build(json_response: bool) -> FastMCP:
    server = FastMCP("bench-echo", log_level="WARNING", json_response=json_response)

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON, not SSE")
    args = parser.parse_args()
    server = build(args.json_response)
    server.settings.host, server.settings.port = args.host, args.port  # loopback: Host/Origin checks on
    uvicorn.run(server.streamable_http_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
