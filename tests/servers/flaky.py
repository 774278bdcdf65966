"""A Streamable HTTP MCP server that opens sessions and answers `ping`, and answers every other
request with HTTP 500: a replica that is up but sick. It counts what it received, per method, at
`GET /counts`, so a test can tell whether the gateway sent a request once or twice.

Run: `python tests/servers/flaky.py --port N [--host H] [--name NAME]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

counts: Counter[str] = Counter()


def build(name: str) -> Starlette:
    async def mcp(request: Request) -> Response:
        if request.method == "DELETE":
            return Response(status_code=200)
        if request.method == "GET":
            return Response(status_code=405)
        message = json.loads(await request.body())
        method = message.get("method", "(response)")
        counts[method] += 1
        if "id" not in message or "method" not in message:
            return Response(status_code=202)
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": name, "version": "1"},
            }
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result}, headers={"mcp-session-id": secrets.token_hex(8)})
        if method == "ping":
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {}})
        return Response("sick", status_code=500)

    async def report(request: Request) -> Response:
        return JSONResponse(dict(counts))

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]), Route("/counts", report)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="flaky")
    args = parser.parse_args()
    uvicorn.run(build(args.name), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
