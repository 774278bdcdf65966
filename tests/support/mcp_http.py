"""A raw Streamable HTTP client for protocol-rule tests: every header and status is visible."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE events as dicts with `id`, `retry` and the decoded `data` (None for priming events)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        data_lines = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data_lines.append(value)
            elif name in ("id", "retry", "event"):
                event[name] = value
        if data_lines or "id" in event:
            joined = "\n".join(data_lines)
            event["data"] = orjson.loads(joined) if joined.strip() else None
            events.append(event)
    return events


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a JSON or SSE answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [e["data"] for e in parse_sse(response.text) if e["data"] is not None]
    return [response.json()]


@dataclass
class RawSession:
    base: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    session_id: str | None = None
    next_id: int = 1

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": VERSION}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def post(self, message: Any, **headers: str) -> httpx.Response:
        body = message if isinstance(message, (bytes, str)) else orjson.dumps(message)
        return self.client.post(self.url, content=body, headers=self.headers(**headers))

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": VERSION, "capabilities": capabilities or {}, "clientInfo": {"name": "raw", "version": "1"}},
            }
        )
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        assert self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
        return messages(response)[-1]  # JSON from the gateway; SSE from an SDK backend asked directly

    def request(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.post(message, **headers)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The final response message of a request."""
        response = self.request(method, params)
        assert response.status_code == 200, response.text
        return messages(response)[-1]

    def close(self) -> None:
        self.client.close()
