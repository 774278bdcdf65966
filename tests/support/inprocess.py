"""The unit tier's parts, all in the test's own event loop: MCP servers served by uvicorn on a
loopback socket, and a raw Streamable HTTP client that talks to an ASGI app without a socket."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
import orjson
import uvicorn

from .mcp_http import ACCEPT, VERSION, messages
from .net import LOOPBACK
from .paths import SERVERS

START_TIMEOUT = 10.0
#: The gateway as the unit tier's client addresses it: a loopback Host, as a local client's
#: (the DNS-rebinding rule refuses others).
BASE_URL = "http://127.0.0.1:8080"

#: `client = await gateway(config)` (the fixture in tests/unit/conftest.py).
GatewayFactory = Callable[[Mapping[str, Any]], Awaitable[httpx.AsyncClient]]


def namespaces(**urls: str) -> dict[str, Any]:
    """`namespaces:` with one Streamable HTTP replica each, named `<namespace>-1`."""
    return {name: {"backends": [{"name": f"{name}-1", "url": url}]} for name, url in urls.items()}


def everything() -> ModuleType:
    """tests/servers/everything.py as a module (a script: it imports its siblings by bare name)."""
    if str(SERVERS) not in sys.path:
        sys.path.append(str(SERVERS))
    return importlib.import_module("everything")


@dataclass
class ServedApp:
    """An ASGI app served by uvicorn on a loopback socket; `stop()` closes it, `start()` serves it
    again on the same port (a backend that went away and came back)."""

    app: Any
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/mcp"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1)
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if self._task.done():
                    self._task.result()  # Raises what stopped it.
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def everything_server(name: str, **opts: Any) -> AsyncIterator[ServedApp]:
    """An everything-server (`opts`: everything.build's keywords) over Streamable HTTP."""
    served = ServedApp(everything().build(name, **opts).streamable_http_app())
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@dataclass
class AsgiSession:
    """A raw Streamable HTTP client of one session: every header and status is visible."""

    client: httpx.AsyncClient
    session_id: str | None = None
    token: str | None = None
    next_id: int = 1
    url: str = field(default="/mcp")

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": VERSION}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    async def post(self, message: Any, **headers: str) -> httpx.Response:
        body = message if isinstance(message, (bytes, str)) else orjson.dumps(message)
        return await self.client.post(self.url, content=body, headers=self.headers(**headers))

    async def initialize(self) -> dict[str, Any]:
        params = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "unit", "version": "1"}}
        response = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        assert (await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})).status_code == 202
        return messages(response)[-1]  # JSON from the gateway; SSE from an SDK server asked directly

    async def request(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return await self.post(message, **headers)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The final response message of a request answered with 200."""
        response = await self.request(method, params)
        assert response.status_code == 200, response.text
        return messages(response)[-1]

    async def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        return await self.call("tools/call", {"name": name, "arguments": arguments})


def text_of(answer: dict[str, Any]) -> str:
    """The text of a tool's answer."""
    assert "result" in answer, answer
    return str(answer["result"]["content"][0]["text"])
