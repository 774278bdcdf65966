"""Streamable HTTP backends: one pooled aiohttp session per replica, one upstream session per
gateway session. Upstream session ids live in the gateway session, so any replica can continue them.

Connections are kept alive and reused: an SSE answer is read to its end (servers close it right
after the response) so its connection goes back to the pool instead of a new TCP handshake per call.
aiohttp rather than httpx here because httpx/httpcore cannot keep SSE connections pooled cheaply
(its pool polls every idle socket on each request; measured in bench/README.md).

Calls and standalone streams (HTTP GET, held open for as long as a client listens) draw on two
separate pools (`max_connections`, `max_stream_connections`), so streams can never take the
connections calls need; waiting for a pooled connection is bounded by the call timeout.
`timeout_seconds` bounds the wait for each next *message* of an answer, whatever the backend sends
in between (SSE keep-alive comments do not count).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import aiohttp

from app.backends.base import (
    MAX_REASON_CHARS,
    Backend,
    BackendFailure,
    Handshake,
    Opened,
    UpstreamSessionGone,
)
from app.backends.sse import SseParser
from app.config import BackendConfig
from app.core import jsonrpc
from app.core.events import Event
from app.core.jsonrpc import Message

ACCEPT_BOTH = "application/json, text/event-stream"
#: Largest single message (JSON body or SSE event) accepted from a backend.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: After the response, how long to wait for the server to end its SSE stream so the connection
#: can be reused; a server that keeps it open just costs that connection.
DRAIN_SECONDS = 0.25


class HttpBackend(Backend):
    """An MCP server reached over Streamable HTTP with keep-alive connections."""

    def __init__(self, namespace: str, config: BackendConfig):
        super().__init__(namespace, config)
        self.url = config.url or ""
        self._session: aiohttp.ClientSession | None = None
        self._stream_session: aiohttp.ClientSession | None = None

    def _new_session(self, limit: int, read_timeout: float | None) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop, as aiohttp requires. `connect`
        bounds the wait for a pooled connection plus connecting: a full pool never holds a call
        longer than its timeout."""
        timeout = self.config.timeout_seconds
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=5.0, sock_read=read_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # One backend's cookies must never reach another session.
            auto_decompress=True,
            trust_env=False,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool of calls (POST, DELETE)."""
        if self._session is None:
            self._session = self._new_session(self.config.max_connections, self.config.timeout_seconds)
        return self._session

    @property
    def stream_session(self) -> aiohttp.ClientSession:
        """The pool of standalone streams (GET), apart so that held streams never starve calls.
        A stream is a subscription: silence is normal, so no read timeout; it lasts as long as
        the client's own stream (which a drain ends)."""
        if self._stream_session is None:
            self._stream_session = self._new_session(self.config.max_stream_connections, None)
        return self._stream_session

    @staticmethod
    def _headers(session_id: str | None, protocol_version: str | None, extra: dict[str, str]) -> dict[str, str]:
        headers = {"accept": ACCEPT_BOTH, "content-type": "application/json", **extra}
        if session_id:
            headers["mcp-session-id"] = session_id
        if protocol_version:
            headers["mcp-protocol-version"] = protocol_version
        return headers

    @asynccontextmanager
    async def _exchange(self, method: str, headers: dict[str, str], body: bytes | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
        """One HTTP exchange, with transport failures turned into gateway errors."""
        session = self.stream_session if method == "GET" else self.session
        try:
            response = await session.request(method, self.url, headers=headers, data=body, allow_redirects=False)
        except aiohttp.ConnectionTimeoutError:
            # Never sent: safe to move to another replica, whatever the request was.
            reason = f"no connection within {self.config.timeout_seconds:g}s (unreachable, or every pooled connection busy)"
            raise self.failure(reason, timeout=True, connect=True) from None
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:
            raise self.failure(f"cannot connect ({type(exc).__name__})", connect=True) from None
        except (TimeoutError, aiohttp.SocketTimeoutError):
            raise self.failure(f"no answer within {self.config.timeout_seconds:g}s", timeout=True) from None
        except aiohttp.ClientError as exc:
            # Possibly received (the connection broke before an answer): never silently resent.
            raise self.failure(f"connection broke ({type(exc).__name__})") from None
        try:
            yield response
        except (TimeoutError, aiohttp.SocketTimeoutError):
            raise self.failure(f"no answer within {self.config.timeout_seconds:g}s", timeout=True) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise self.failure(f"connection broke ({type(exc).__name__}: {exc})") from None
        finally:
            response.release()

    async def _check_status(self, response: aiohttp.ClientResponse, session_id: str | None) -> None:
        if response.status == 404 and session_id:
            raise UpstreamSessionGone(session_id)
        if response.status >= 400:
            raise self.failure(f"HTTP {response.status} from {self.name}", trips=response.status >= 500)

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, up to MAX_MESSAGE_BYTES: a larger one is refused, not cut short."""
        body = bytearray()
        declared = response.content_length or 0
        if declared <= MAX_MESSAGE_BYTES:
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > MAX_MESSAGE_BYTES:
                    break
        if max(declared, len(body)) > MAX_MESSAGE_BYTES:
            raise self._too_big()
        return bytes(body)

    def _too_big(self) -> BackendFailure:
        """The backend is well, the answer too big: not counted against its breaker."""
        return self.failure(f"answer exceeds {MAX_MESSAGE_BYTES} bytes", trips=False)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[Event, None]:
        """The messages of a JSON or SSE answer, as they arrive."""
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            yield Event(self.decode(await self._body(response)), source=self.name)
        elif content_type.startswith("text/event-stream"):
            parser = SseParser(MAX_MESSAGE_BYTES)
            async for chunk in response.content.iter_any():
                try:
                    received = parser.feed(chunk)
                except ValueError:
                    raise self._too_big() from None
                for sse in received:
                    message = self.decode(sse.data) if sse.data.strip() else None
                    yield Event(message, sse.id, sse.retry, self.name)
        elif response.status != 202:
            raise self.failure(f"unexpected content type {content_type[:MAX_REASON_CHARS]!r}")

    async def _answer(self, response: aiohttp.ClientResponse, request_id: Any) -> AsyncGenerator[Event, None]:
        """What the backend sends for one request, ending with its response. Each next message
        must come within the call timeout: keep-alive comments and message-less events do not
        extend it. A response to any other id is the backend's failure, never relayed."""
        timeout = self.config.timeout_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aclosing(self._events(response)) as events:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise self.failure(f"no answer within {timeout:g}s", timeout=True) from None
                message = event.message
                if message is not None and jsonrpc.is_response(message) and message.get("id") != request_id:
                    raise self.invalid(f"a response to another request (id {str(message.get('id'))[:64]!r})")
                yield event
                if message is not None:
                    deadline = loop.time() + timeout

    @staticmethod
    async def _finish(response: aiohttp.ClientResponse) -> None:
        """Read what is left of an answer so its connection returns to the pool."""
        try:
            await asyncio.wait_for(response.content.read(), DRAIN_SECONDS)
        except (TimeoutError, aiohttp.ClientError):
            response.close()  # Still streaming: give this connection up rather than wait.

    async def open_session(self, handshake: Handshake, headers: dict[str, str]) -> Opened:
        request = {"jsonrpc": "2.0", "id": "gateway-initialize", "method": "initialize", "params": handshake.initialize_params()}
        async with self._exchange("POST", self._headers(None, None, headers), jsonrpc.dumps(request)) as response:
            await self._check_status(response, None)
            session_id = response.headers.get("mcp-session-id")
            result = None
            async with aclosing(self._answer(response, request["id"])) as events:
                async for event in events:
                    if event.message is not None and jsonrpc.is_response(event.message):
                        if "error" in event.message:
                            raise self.failure(f"initialize refused: {event.message['error'].get('message')}", trips=False)
                        result = event.message.get("result") or {}
                        break
            await self._finish(response)
        if result is None:
            raise self.failure("initialize got no answer")
        version = str(result.get("protocolVersion") or handshake.protocol_version)
        await self.send(session_id, version, jsonrpc.notification("notifications/initialized"), headers)
        self.server_result = result
        return Opened(session_id, version, result)

    async def request(
        self, session_id: str | None, protocol_version: str | None, message: Message, headers: dict[str, str], owner: str
    ) -> AsyncGenerator[Event, None]:
        request_id = message.get("id")
        answered = resumable = False
        async with self._exchange("POST", self._headers(session_id, protocol_version, headers), jsonrpc.dumps(message)) as response:
            await self._check_status(response, session_id)
            async with aclosing(self._answer(response, request_id)) as events:
                async for event in events:
                    resumable = resumable or event.event_id is not None
                    final = event.message is not None and jsonrpc.is_response(event.message) and event.message.get("id") == request_id
                    if final:
                        answered = True
                        await self._finish(response)
                    yield event
                    if final:
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
            await self._finish(response)

    async def listen(self, session_id: str | None, protocol_version: str | None, last_event_id: str | None) -> AsyncGenerator[Event, None]:
        headers = self._headers(session_id, protocol_version, {"accept": "text/event-stream"})
        headers.pop("content-type")
        if last_event_id:
            headers["last-event-id"] = last_event_id
        async with self._exchange("GET", headers) as response:
            if response.status == 405:
                return
            await self._check_status(response, session_id)
            yield Event(None, source=self.name)  # The stream is open: nothing sent from now on is lost.
            async with aclosing(self._events(response)) as events:
                async for event in events:
                    yield event

    async def end_session(self, session_id: str | None, protocol_version: str | None) -> None:
        if not session_id:
            return
        headers = self._headers(session_id, protocol_version, {})
        headers.pop("content-type")
        try:
            async with self.session.delete(self.url, headers=headers, timeout=aiohttp.ClientTimeout(total=5.0)) as response:
                await response.read()
        except (TimeoutError, aiohttp.ClientError):
            pass  # The upstream session expires on its own; nothing is lost.

    async def close(self) -> None:
        for session in (self._session, self._stream_session):
            if session is not None:
                await session.close()
