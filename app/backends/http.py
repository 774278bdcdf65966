"""Streamable HTTP backends: one pooled httpx client per replica, one upstream session per gateway
session. Upstream session ids live in the gateway session, so any replica can continue them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from httpx_sse import EventSource

from app import jsonrpc
from app.backends.base import Backend, Event, Handshake, Opened, UpstreamSessionGone
from app.config import BackendConfig
from app.jsonrpc import Message

ACCEPT_BOTH = "application/json, text/event-stream"


class HttpBackend(Backend):
    """An MCP server reached over Streamable HTTP with keep-alive connections."""

    def __init__(self, namespace: str, config: BackendConfig, max_connections: int = 200):
        super().__init__(namespace, config)
        self.url = config.url or ""
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_seconds, connect=5.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=60
            ),
            follow_redirects=False,
        )

    @staticmethod
    def _headers(session_id: str | None, protocol_version: str | None, extra: dict[str, str]) -> dict[str, str]:
        headers = {"accept": ACCEPT_BOTH, "content-type": "application/json", **extra}
        if session_id:
            headers["mcp-session-id"] = session_id
        if protocol_version:
            headers["mcp-protocol-version"] = protocol_version
        return headers

    @asynccontextmanager
    async def _exchange(self, method: str, headers: dict[str, str], body: bytes | None = None):
        """One HTTP exchange, with transport failures turned into gateway errors."""
        try:
            request = self.client.build_request(method, self.url, headers=headers, content=body)
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self.failure(f"no answer within {self.config.timeout_seconds:g}s ({type(exc).__name__})", timeout=True) from None
        except httpx.HTTPError as exc:
            raise self.failure(f"cannot connect ({type(exc).__name__})", connect=True) from None
        try:
            yield response
        except httpx.TimeoutException:
            raise self.failure(f"no answer within {self.config.timeout_seconds:g}s", timeout=True) from None
        except httpx.HTTPError as exc:
            raise self.failure(f"connection broke ({type(exc).__name__})") from None
        finally:
            await response.aclose()

    async def _check_status(self, response: httpx.Response, session_id: str | None) -> None:
        if response.status_code == 404 and session_id:
            raise UpstreamSessionGone(session_id)
        if response.status_code >= 400:
            await response.aread()
            raise self.failure(f"HTTP {response.status_code} from {self.name}")

    async def _events(self, response: httpx.Response) -> AsyncIterator[Event]:
        """The messages of a JSON or SSE answer, as they arrive."""
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            yield Event(jsonrpc.loads(await response.aread()), source=self.name)
        elif content_type.startswith("text/event-stream"):
            async for sse in EventSource(response).aiter_sse():
                message = jsonrpc.loads(sse.data) if sse.data.strip() else None
                yield Event(message, sse.id or None, sse.retry, self.name)
        elif response.status_code != 202:
            raise self.failure(f"unexpected content type {content_type!r}")

    async def open_session(self, handshake: Handshake, headers: dict[str, str]) -> Opened:
        request = {"jsonrpc": "2.0", "id": "gateway-initialize", "method": "initialize", "params": handshake.initialize_params()}
        async with self._exchange("POST", self._headers(None, None, headers), jsonrpc.dumps(request)) as response:
            await self._check_status(response, None)
            session_id = response.headers.get("mcp-session-id")
            result = None
            async for event in self._events(response):
                if event.message is not None and jsonrpc.is_response(event.message):
                    if "error" in event.message:
                        raise self.failure(f"initialize refused: {event.message['error'].get('message')}")
                    result = event.message.get("result") or {}
                    break
        if result is None:
            raise self.failure("initialize got no answer")
        version = str(result.get("protocolVersion") or handshake.protocol_version)
        await self.send(session_id, version, jsonrpc.notification("notifications/initialized"), headers)
        self.server_result = result
        return Opened(session_id, version, result)

    async def request(
        self, session_id: str | None, protocol_version: str | None, message: Message, headers: dict[str, str], owner: str
    ) -> AsyncIterator[Event]:
        request_id = message.get("id")
        answered = resumable = False
        async with self._exchange("POST", self._headers(session_id, protocol_version, headers), jsonrpc.dumps(message)) as response:
            await self._check_status(response, session_id)
            async for event in self._events(response):
                resumable = resumable or event.event_id is not None
                yield event
                if event.message is not None and jsonrpc.is_response(event.message) and event.message.get("id") == request_id:
                    answered = True
                    break
        if not answered and not resumable:
            raise self.failure("the backend closed the stream without answering")

    async def send(
        self,
        session_id: str | None,
        protocol_version: str | None,
        message: Message,
        headers: dict[str, str],
        owner: str = "",
    ) -> None:
        async with self._exchange("POST", self._headers(session_id, protocol_version, headers), jsonrpc.dumps(message)) as response:
            await self._check_status(response, session_id)

    async def listen(
        self, session_id: str | None, protocol_version: str | None, last_event_id: str | None
    ) -> AsyncIterator[Event]:
        headers = self._headers(session_id, protocol_version, {"accept": "text/event-stream"})
        headers.pop("content-type")
        if last_event_id:
            headers["last-event-id"] = last_event_id
        async with self._exchange("GET", headers) as response:
            if response.status_code == 405:
                return
            await self._check_status(response, session_id)
            yield Event(None, source=self.name)  # The stream is open: nothing sent from now on is lost.
            async for event in self._events(response):
                yield event

    async def end_session(self, session_id: str | None, protocol_version: str | None) -> None:
        if not session_id:
            return
        headers = self._headers(session_id, protocol_version, {})
        headers.pop("content-type")
        try:
            await self.client.delete(self.url, headers=headers, timeout=5.0)
        except httpx.HTTPError:
            pass  # The upstream session expires on its own; nothing is lost.

    async def close(self) -> None:
        await self.client.aclose()
