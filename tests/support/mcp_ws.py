"""A raw JSON-RPC client on the gateway's `/ws` (subprotocol `mcp`): every message visible."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from websockets.sync.client import ClientConnection, connect

from .mcp_http import VERSION


class WsSession:
    """One WebSocket to `/ws`; `headers` go on the upgrade request (a bearer token, say)."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None):
        self._opened = connect(url, subprotocols=["mcp"], additional_headers=headers, open_timeout=10)  # type: ignore[list-item]
        self.conn: ClientConnection = self._opened.__enter__()
        self.ids = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request; return its response (skipping any server requests and notifications)."""
        self.ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            message["params"] = params
        self.conn.send(orjson.dumps(message).decode())
        while True:
            answer = orjson.loads(self.conn.recv(timeout=15))
            if answer.get("id") == self.ids and "method" not in answer:
                return answer

    def initialize(self) -> dict[str, Any]:
        return self.call("initialize", {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "ws", "version": "1"}})

    def close(self) -> None:
        self._opened.__exit__(None, None, None)

    def __enter__(self) -> WsSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
