"""A Streamable HTTP MCP server that opens sessions and answers `ping`, and answers every other
request with HTTP 500: a replica that is up but sick. It counts what it received, per method, at
`GET /counts`, so a test can tell whether the gateway sent a request once or twice.

Some tools misbehave in a named way instead (`MISBEHAVIOURS`): a very large answer, garbage, an
answer to another request, an SSE stream of keep-alive comments that never answers. The same
misbehaviours are served over WebSocket (`/ws`, subprotocol `mcp`) and stdio (`--stdio`).

Run: `python tests/servers/flaky.py --port N [--host H] [--name NAME]` or `... --stdio`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

counts: Counter[str] = Counter()

#: Not JSON at all: the first bytes of an answer that broke off.
GARBAGE = '{"jsonrpc": "2.0", "id": '
#: Lines that are not usable JSON-RPC messages: not JSON, an array of numbers, an unusable id,
#: a notification whose params are not an object.
NOISE = [
    GARBAGE,
    "[1, 2]",
    '{"jsonrpc": "2.0", "id": [1], "result": {}}',
    '{"jsonrpc": "2.0", "method": "notifications/progress", "params": 5}',
]
#: Tools and what they do. Any other tool: HTTP 500 (over WebSocket and stdio: no answer).
MISBEHAVIOURS = {
    "big": "a correct answer of `bytes` bytes of text (default 2 MB); over HTTP as SSE when `sse`",
    "garbage": "an answer that is not JSON",
    "array": "the right answer inside a JSON array",
    "other_id": "an answer carrying another request's id",
    "sse_garbage": "HTTP only: an SSE event whose data is not JSON",
    "keepalive": "HTTP only: an SSE stream of keep-alive comments, never an answer",
    "noise": "WebSocket and stdio only: lines of garbage (`NOISE`), then the right answer",
}


def result(message: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message["id"], "result": value}


def initialized(message: dict[str, Any], name: str) -> dict[str, Any]:
    return result(
        message,
        {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": name, "version": "1"},
        },
    )


def tool_answer(message: dict[str, Any]) -> list[str]:
    """What a misbehaving tool sends, as JSON texts (one per line or frame); [] for no answer."""
    params = message.get("params") or {}
    tool, arguments = params.get("name"), params.get("arguments") or {}
    correct = result(message, {"content": [{"type": "text", "text": tool}]})
    if tool == "big":
        text = "x" * int(arguments.get("bytes", 2_000_000))
        return [json.dumps(result(message, {"content": [{"type": "text", "text": text}]}))]
    if tool == "garbage":
        return [GARBAGE]
    if tool == "array":
        return [json.dumps([correct])]
    if tool == "other_id":
        return [json.dumps({**correct, "id": f"other-{message['id']}"})]
    if tool == "noise":
        return [*NOISE, json.dumps(correct)]
    return []


def answer(message: dict[str, Any], name: str) -> list[str]:
    """The answer of the shared-connection transports (WebSocket, stdio)."""
    method = message.get("method", "(response)")
    counts[method] += 1
    if "id" not in message or "method" not in message:
        return []
    if method == "initialize":
        return [json.dumps(initialized(message, name))]
    if method == "ping":
        return [json.dumps(result(message, {}))]
    if method == "tools/call":
        return tool_answer(message)
    return []


def sse(data: str) -> Response:
    """One SSE event carrying `data`, and the end of the stream."""
    return Response(f"event: message\ndata: {data}\n\n", media_type="text/event-stream")


async def keepalives() -> AsyncIterator[bytes]:
    while True:
        yield b": keep-alive\n\n"
        await asyncio.sleep(0.2)


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
            return JSONResponse(initialized(message, name), headers={"mcp-session-id": secrets.token_hex(8)})
        if method == "ping":
            return JSONResponse(result(message, {}))
        tool = (message.get("params") or {}).get("name")
        if method == "tools/call" and tool == "keepalive":
            return StreamingResponse(keepalives(), media_type="text/event-stream")
        if method == "tools/call" and tool == "sse_garbage":
            return sse(GARBAGE)
        if method == "tools/call" and (texts := tool_answer(message)):
            if (message["params"].get("arguments") or {}).get("sse"):
                return sse(texts[-1])
            return Response(texts[-1], media_type="application/json")
        return Response("sick", status_code=500)

    async def report(request: Request) -> Response:
        return JSONResponse(dict(counts))

    async def ws(socket: WebSocket) -> None:
        await socket.accept(subprotocol="mcp")
        while True:
            for text in answer(json.loads(await socket.receive_text()), name):
                await socket.send_text(text)

    routes = [Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]), Route("/counts", report), WebSocketRoute("/ws", ws)]
    return Starlette(routes=routes)


def serve_stdio(name: str) -> None:
    """Newline-delimited JSON on stdin/stdout, one message at a time."""
    for line in sys.stdin:
        for text in answer(json.loads(line), name):
            sys.stdout.write(text + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--name", default="flaky")
    parser.add_argument("--stdio", action="store_true", help="serve on stdin/stdout instead of HTTP")
    args = parser.parse_args()
    if args.stdio:
        serve_stdio(args.name)
        return
    if args.port is None:
        parser.error("--port is required unless --stdio")
    uvicorn.run(build(args.name), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
