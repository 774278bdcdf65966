"""A small asyncio MCPB client: JSON-RPC over frames to a bridge (tests, bench, the router).

    async with await MCPBClient.connect("127.0.0.1", 8445, auth_token=token) as client:
        await client.initialize()
        result = await client.call("tools/call", {"name": "weather__get_forecast", "arguments": {"city": "Oslo"}})

Requests may be issued concurrently; responses are matched by id. Server-to-client requests and
notifications arrive on `incoming`; `goaway` is set when the server drains.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

import orjson

from app.tcp_bridge.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    Layout,
    encode_frame,
    encode_json,
    make_envelope,
    parse_error_payload,
)

Message = dict[str, Any]
PROTOCOL_VERSION = "2025-11-25"


class MCPBError(Exception):
    """The server sent an Error frame (`code: message`), or the connection ended."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.message = message


class RpcError(Exception):
    """A JSON-RPC error response."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


async def read_frame(reader: asyncio.StreamReader, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame | None:
    """One frame from a stream, or None at a clean EOF (raises FrameError, IncompleteReadError)."""
    decoder = FrameDecoder(max_frame_bytes)
    header = await reader.read(HEADER_SIZE)
    if not header:
        return None
    decoder.feed(header)
    while (frame := decoder.next_frame()) is None:
        data = await reader.read(decoder.wanted)
        if not data:
            decoder.eof()
        decoder.feed(data)
    return frame


class MCPBClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        layout: Layout = Layout.V1,
        auth_token: str | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        incoming_limit: int = 1024,
    ):
        self.reader = reader
        self.writer = writer
        self.layout = layout
        self.max_frame_bytes = max_frame_bytes
        self._token = auth_token
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[Message]] = {}
        self._health: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._acks: deque[asyncio.Future[int]] = deque()
        #: Server-to-client requests and notifications, in arrival order (bounded: a full queue
        #: stops reading, which is backpressure on the server).
        self.incoming: asyncio.Queue[Message] = asyncio.Queue(incoming_limit)
        #: Error frames received, as (code, message).
        self.errors: list[tuple[str, str]] = []
        #: Responses nobody waits for (e.g. a parse error with id null).
        self.stray: list[Message] = []
        self.goaway = asyncio.Event()
        self.goaway_payload: dict[str, Any] | None = None
        self.closed = asyncio.Event()
        self._reader_task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        layout: Layout = Layout.V1,
        auth_token: str | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        timeout: float = 10.0,
    ) -> MCPBClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer, layout=layout, auth_token=auth_token, max_frame_bytes=max_frame_bytes)

    async def __aenter__(self) -> MCPBClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- frames -----------------------------------------------------------------------------------
    async def send_frame(self, frame_type: FrameType | int, payload: bytes = b"") -> None:
        if self.closed.is_set():
            raise self._closed_error()
        self.writer.write(encode_frame(frame_type, payload, layout=self.layout, max_frame_bytes=self.max_frame_bytes))
        await self.writer.drain()

    def _closed_error(self) -> MCPBError:
        code, message = self.errors[-1] if self.errors else ("", "connection closed")
        return MCPBError(code or "connection_closed", message)

    async def _read_loop(self) -> None:
        decoder = FrameDecoder(self.max_frame_bytes)
        try:
            while True:
                frame = decoder.next_frame()
                if frame is None:
                    data = await self.reader.read(min(decoder.wanted, 1 << 16))
                    if not data:
                        decoder.eof()
                        return
                    decoder.feed(data)
                    continue
                await self._on_frame(frame)
        except (FrameError, ConnectionError, OSError, ValueError) as exc:  # ValueError: a payload that is not JSON
            self.errors.append(("client_error", str(exc)))
        finally:
            self.closed.set()
            error = self._closed_error()
            waiting: list[asyncio.Future[Any]] = [*self._pending.values(), *self._health, *self._acks]
            for future in waiting:
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()

    async def _on_frame(self, frame: Frame) -> None:
        kind = frame.type
        if kind is FrameType.RESPONSE:
            message = orjson.loads(frame.payload)
            future = self._pending.pop(message.get("id"), None) if isinstance(message.get("id"), (str, int)) else None
            if future is not None and not future.done():
                future.set_result(message)
            else:
                self.stray.append(message)
        elif kind is FrameType.REQUEST:
            await self.incoming.put(orjson.loads(frame.payload))
        elif kind is FrameType.HEALTH_CHECK:
            if self._health:
                self._health.popleft().set_result(orjson.loads(frame.payload))
        elif kind is FrameType.VERSION_ACK:
            if self._acks:
                self._acks.popleft().set_result(orjson.loads(frame.payload)["agreed_version"])
        elif kind is FrameType.CONTROL:
            payload = orjson.loads(frame.payload) if frame.payload else {}
            if payload.get("action") == "goaway":
                self.goaway_payload = payload
                self.goaway.set()
        elif kind is FrameType.ERROR:
            self.errors.append(parse_error_payload(frame.payload))

    # -- JSON-RPC ---------------------------------------------------------------------------------
    async def send_message(self, message: Message) -> None:
        """Any JSON-RPC message; the first one carries the credentials."""
        payload = make_envelope(message, self._token)
        self._token = None
        frame_type = FrameType.RESPONSE if "method" not in message else FrameType.REQUEST
        await self.send_frame(frame_type, encode_json(payload))

    async def request(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = 60.0) -> Message:
        """Send a request and return its response message (result or error)."""
        request_id = next(self._ids)
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.send_message(message)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = 60.0) -> Any:
        """The result of a request; a JSON-RPC error raises RpcError."""
        response = await self.request(method, params, timeout=timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response.get("result")

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send_message(message)

    async def respond(self, request_id: Any, result: Any) -> None:
        """Answer a server-to-client request."""
        await self.send_message({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def initialize(self, capabilities: dict[str, Any] | None = None, client_name: str = "mcpb-client") -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": capabilities or {}, "clientInfo": {"name": client_name, "version": "1"}},
        )
        await self.notify("notifications/initialized")
        return result

    # -- bridge-level frames ------------------------------------------------------------------------
    async def health(self, timeout: float = 10.0) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._health.append(future)
        await self.send_frame(FrameType.HEALTH_CHECK)
        return await asyncio.wait_for(future, timeout)

    async def negotiate(
        self, supported: list[int] | None = None, *, min_version: int = 1, max_version: int = 1, timeout: float = 10.0
    ) -> int:
        supported = supported or list(range(min_version, max_version + 1))
        offer = {
            "min_version": min(supported),
            "max_version": max(supported),
            "preferred_version": max(supported),
            "supported_versions": supported,
        }
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks.append(future)
        await self.send_frame(FrameType.VERSION_NEGOTIATION, encode_json(offer))
        return await asyncio.wait_for(future, timeout)

    # -- closing ---------------------------------------------------------------------------------
    async def half_close(self) -> None:
        """Stop sending (FIN); responses still owed keep arriving."""
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def wait_closed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (TimeoutError, ConnectionError, OSError):
            pass
        self._reader_task.cancel()
        try:
            await self._reader_task
        except asyncio.CancelledError:
            pass
