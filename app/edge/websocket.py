"""JSON-RPC over WebSocket on `/ws` (subprotocol `mcp`, one message per text frame).

The connection is the session: it starts with `initialize` and ends when the socket closes.
Requests run concurrently (bounded per connection); a bad frame gets a JSON-RPC error and the
connection carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing

from starlette.websockets import WebSocket, WebSocketDisconnect

from app import telemetry
from app.auth import Principal
from app.core import jsonrpc
from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.edge.http import error_http
from app.edge.services import Edge, EdgeServices
from app.pipeline.context import RequestContext
from app.pipeline.hub import Hub
from app.state import SessionRecord
from app.telemetry.logs import cap

log = logging.getLogger("mcp_gateway.websocket")

SUBPROTOCOL = "mcp"
SUBPROTOCOL_REQUIRED = GatewayError(
    ErrorCode.INVALID_REQUEST,
    "Bad Request: the WebSocket must offer the subprotocol 'mcp' (Sec-WebSocket-Protocol: mcp)",
    http_status=400,
)
#: Close code when the gateway drains.
GOING_AWAY = 1001


def max_frame_bytes(max_body_bytes: int) -> int:
    """The largest frame the server reads at all (uvicorn's `ws_max_size`). It is above the
    JSON-RPC limit so that a message just over `max_body_bytes` gets a JSON-RPC error and the
    connection goes on; a frame beyond this closes the connection (1009, message too big)."""
    return 2 * max_body_bytes


class WebSocketEdge(Edge):
    """The `/ws` endpoint: the edge's checks (origin, subprotocol, draining, authentication), then
    one `WebSocketConnection` per client."""

    def __init__(self, services: EdgeServices, *, hub: Hub, max_in_flight_per_connection: int, session_ttl: float):
        super().__init__(services)
        self.hub = hub
        self.max_in_flight = max_in_flight_per_connection
        self.session_ttl = session_ttl

    async def serve(self, websocket: WebSocket) -> None:
        try:
            self.policy.check(websocket.headers)
        except GatewayError as error:
            log.warning("websocket refused: %s", error.message)
            await websocket.send_denial_response(error_http(error))
            return
        offered = websocket.scope.get("subprotocols", [])
        if SUBPROTOCOL not in offered:
            # A plain 403 would leave a first-time user guessing: say what is missing.
            log.warning("websocket refused: subprotocol 'mcp' not offered", extra={"subprotocols": cap(", ".join(offered))})
            await websocket.send_denial_response(error_http(SUBPROTOCOL_REQUIRED))
            return
        if self.drain.draining:
            await websocket.send_denial_response(error_http(GatewayError(ErrorCode.SHUTTING_DOWN, "Server shutting down", http_status=503)))
            return
        try:
            principal = await self.auth.authenticate(websocket.headers)
        except GatewayError as error:
            log.warning("websocket refused: %s", error.message)
            await websocket.send_denial_response(error_http(error))
            return
        await websocket.accept(subprotocol=SUBPROTOCOL)
        await WebSocketConnection(self, websocket, principal).run()


class WebSocketConnection:
    """One client connection: a reader loop, request tasks, and the hub's push messages."""

    def __init__(self, edge: WebSocketEdge, websocket: WebSocket, principal: Principal):
        self.edge = edge
        self.pipeline = edge.pipeline
        self.ws = websocket
        self.record: SessionRecord | None = None
        peer = websocket.client.host if websocket.client else None
        client_address, protocol = edge.clients.resolve(peer, websocket.headers, "websocket")
        self.ctx = RequestContext(protocol=protocol, principal=principal, client_address=client_address)
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(edge.max_in_flight)
        self._push: asyncio.Task[None] | None = None
        self._touched = time.monotonic()
        self._closing: asyncio.Task[None] | None = None

    async def send(self, message: Message) -> None:
        async with self._send_lock:
            await self.ws.send_text(jsonrpc.dumps(message).decode())

    async def run(self) -> None:
        unregister = self.edge.drain.on_stop(self._begin_close)
        try:
            while True:
                frame = await self.ws.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                await self._on_frame(frame.get("text") if frame.get("text") is not None else frame.get("bytes"))
        except WebSocketDisconnect:
            return
        finally:
            unregister()
            await self._close()

    def _begin_close(self) -> None:
        """The gateway drains: answer what is in flight, then close with 1001 (going away)."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.ws.close(code=GOING_AWAY, reason="server shutting down")
        except RuntimeError:
            pass  # Already closed by the client.

    async def _on_frame(self, data: str | bytes | None) -> None:
        message: Message | None = None
        started = time.perf_counter()
        try:
            size = len(data.encode()) if isinstance(data, str) else len(data or b"")
            if data is None or size > self.edge.max_body:
                raise GatewayError(ErrorCode.INVALID_REQUEST, f"Message exceeds {self.edge.max_body} bytes")
            message = jsonrpc.validate(jsonrpc.loads(data))
            await self._on_message(message)
        except GatewayError as error:
            log.warning("message refused: %s", error.message)
            telemetry.request_refused("websocket", message, error, started, self.ctx)  # Refused here: counted here.
            await self._refuse(message, error)

    async def _refuse(self, message: Message | None, error: GatewayError) -> None:
        request_id = message.get("id") if message and "method" in message else None
        await self.send(jsonrpc.error_response(request_id, error))

    async def _on_message(self, message: Message) -> None:
        if message.get("method") == "initialize":
            if self.record is not None:
                raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: this connection is already initialized")
            if not jsonrpc.is_request(message):
                raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: initialize must be a request with an id")
            try:
                self.record, response = await self.pipeline.initialize(self.ctx, message)
            except GatewayError as error:  # The pipeline counted it: the edge only answers.
                log.warning("message refused: %s", error.message)
                await self._refuse(message, error)
                return
            self._push = asyncio.create_task(self._forward_pushes(self.record.id))
            await self.send(response)
            return
        if self.record is None:
            if message.get("method") == "ping" and "id" in message:
                await self.send(jsonrpc.result_response(message["id"], {}))
                return
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: send initialize first")
        record = await self._touch(self.record)
        if jsonrpc.is_notification(message):
            try:
                await self.pipeline.handle_notification(self.ctx, record, message)
            except GatewayError as error:
                if error.code != ErrorCode.RATE_LIMITED:
                    raise
                # Dropped (the gateway counted and logged it): a notification gets no answer.
        elif jsonrpc.is_response(message):
            await self.pipeline.handle_response(self.ctx, record, message)
        elif self._closing is not None:
            raise GatewayError(ErrorCode.SHUTTING_DOWN, "Server shutting down: reconnect to send new requests")
        elif self._slots.locked():
            raise GatewayError(
                ErrorCode.INVALID_REQUEST,
                f"Too many requests in flight on this connection (limit {self.edge.max_in_flight})",
            )
        else:
            await self._slots.acquire()
            task = asyncio.create_task(self._request(record, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _touch(self, record: SessionRecord) -> SessionRecord:
        """The open connection keeps its stored session alive without a store round trip per message."""
        now = time.monotonic()
        if now - self._touched > self.edge.session_ttl / 3:
            self._touched = now
            await self.pipeline.keep_alive(record)
        return record

    async def _request(self, record: SessionRecord, message: Message) -> None:
        try:
            with self.edge.drain.request():
                await self._answer(record, message)
        finally:
            self._slots.release()

    async def _answer(self, record: SessionRecord, message: Message) -> None:
        try:
            async with aclosing(self.pipeline.handle_request(self.ctx, record, message)) as events:
                async for event in events:
                    if event.message is not None:
                        await self.send(event.message)
        except GatewayError as error:
            await self._send_quietly(jsonrpc.error_response(message.get("id"), error))
        except (WebSocketDisconnect, RuntimeError):
            pass  # The client went away; its answer has nowhere to go.

    async def _send_quietly(self, message: Message) -> None:
        try:
            await self.send(message)
        except (WebSocketDisconnect, RuntimeError):
            pass  # The client went away; its answer has nowhere to go.

    async def _forward_pushes(self, session_id: str) -> None:
        inbox = self.edge.hub.subscribe(session_id, self.ctx.principal.can_read)
        try:
            while True:
                await self.send(await inbox.get())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.edge.hub.unsubscribe(session_id, inbox)

    async def _close(self) -> None:
        for task in [*self._tasks, *([self._push] if self._push else [])]:
            task.cancel()
        if self.record is not None:
            await self.pipeline.end_session(self.record)
