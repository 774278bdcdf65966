"""One MCPB client connection: frames in, JSON-RPC to the gateway WebSocket, frames out.

The read loop decodes frames and handles each in order; requests are sent upstream at once and
their responses come back on the upstream reader task, matched by JSON-RPC id, in any order.
Writes never interleave (each frame is one `write`), and every write waits while the client's
socket buffer is above its high-water mark, so a client that does not read stops the upstream
reader, which stops reading the gateway: nothing is buffered without bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.core import jsonrpc
from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.tcp_bridge import metrics
from app.tcp_bridge.codec import (
    CURRENT_VERSION,
    EnvelopeError,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorCode,
    FrameType,
    Layout,
    encode_header,
    encode_json,
    error_payload,
    negotiate_version,
    open_envelope,
)
from app.tcp_bridge.upstream import (
    GOING_AWAY,
    UpstreamUnauthorized,
    UpstreamUnavailable,
    open_upstream,
)

if TYPE_CHECKING:
    from app.tcp_bridge.server import Bridge

log = logging.getLogger("mcp_gateway.tcp_bridge")

#: Largest read handed to the decoder at once (it is never asked for more than one frame).
READ_CHUNK = 64 * 1024
#: Above this many unsent bytes, writers wait for the client to read.
WRITE_HIGH_WATER = 256 * 1024
#: Closing: how long to wait for the client to close its side after ours (see `_linger`).
LINGER_SECONDS = 1.0
#: Payloads at least this large are written after their header instead of copied behind it.
COPY_LIMIT = 16 * 1024


def address_key(address: str | None) -> str:
    """What the per-address limit counts by: the IP, or its /64 for IPv6 (one host's usual
    share: a client can pick any address in it)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class BridgeConnection:
    def __init__(self, bridge: Bridge, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.bridge = bridge
        self.config = bridge.config
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client_address: str | None = peer[0] if isinstance(peer, tuple) else None
        self.address_key = address_key(self.client_address)
        self.decoder = FrameDecoder(self.config.max_frame_bytes)
        #: Answers go out in the layout of the connection's first frame.
        self.layout: Layout | None = None
        self.version = CURRENT_VERSION
        self.negotiated = False
        #: Requests sent to the gateway and not answered yet, by JSON-RPC id.
        self.pending: dict[str | int, metrics.RequestSpan] = {}
        self.upstream: ClientConnection | None = None
        self._upstream_task: asyncio.Task[None] | None = None
        self.token: str | None = None
        self.draining = False
        self.closing = False
        self.half_closed = False
        self.last_activity = time.monotonic()
        self.opened = time.monotonic()
        self.close_reason = "client_eof"
        self.requests = 0
        self._settled = asyncio.Event()  # set whenever nothing is owed to the client
        self._settled.set()
        self._task: asyncio.Task[Any] | None = None
        self.done = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        self._task = asyncio.current_task()
        metrics.connection_opened()
        try:
            await self._serve()
        except asyncio.CancelledError:
            if not self.closing:
                raise
        except (ConnectionError, OSError):
            self.close_reason = "connection_reset"
        except Exception:
            log.exception("connection failed", extra={"client": self.client_address})
            self.close_reason = "internal_error"
            self._write_error(FrameErrorCode.INTERNAL_ERROR, "the bridge failed on this connection")
        finally:
            await self._close()

    def _begin_close(self, reason: str) -> None:
        """Stop serving: the read loop ends and `_close` runs (what was written still goes out)."""
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _close(self) -> None:
        self.closing = True
        for entry in self.pending.values():
            entry.finish(None, f"connection closed ({self.close_reason})")
        self.pending.clear()
        self._settled.set()
        if self._upstream_task is not None and self._upstream_task is not asyncio.current_task():
            self._upstream_task.cancel()
        if self.upstream is not None:
            try:
                await asyncio.wait_for(self.upstream.close(), 3)  # the gateway ends the session
            except (TimeoutError, ConnectionClosed, OSError):
                pass
        transport = self.writer.transport
        if not transport.is_closing():
            if not self.half_closed and self.close_reason != "connection_reset":
                await self._linger()
            transport.close()  # flushes what was written, then closes
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.config.write_timeout)
        except (TimeoutError, ConnectionError, OSError):
            transport.abort()
        except asyncio.CancelledError:
            transport.abort()
            raise
        finally:
            metrics.connection_closed()
            # Load-balancer probes open and close connections all day: only real sessions log at info.
            quiet = self.requests == 0 and self.close_reason == "client_eof"
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "connection closed",
                extra={
                    "client": self.client_address,
                    "reason": self.close_reason,
                    "requests": self.requests,
                    "duration_ms": round((time.monotonic() - self.opened) * 1000, 1),
                },
            )
            self.done.set()

    async def _linger(self) -> None:
        """Send FIN after the last frame, then read and drop input until the client closes too
        (briefly). Closing a socket with unread input makes the kernel send RST, which can
        destroy the Error frame we just wrote before the client reads it."""
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await self.reader.read(READ_CHUNK):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass

    # -- reading ------------------------------------------------------------------------------------
    async def _serve(self) -> None:
        while not self.closing:
            try:
                frame = self.decoder.next_frame()
            except FrameError as error:
                self._note_layout(error.layout)
                self._write_error(error.code, error.message)
                if error.fatal:
                    log.warning("protocol error, closing", extra={"client": self.client_address, "error": error.code.value})
                    self.close_reason = error.code.value
                    return
                await self._drain()
                continue
            if frame is None:
                data = await self.reader.read(min(self.decoder.wanted, READ_CHUNK))
                if data:
                    self.decoder.feed(data)
                    continue
                try:
                    self.decoder.eof()
                except FrameError as error:
                    self._note_layout(error.layout)
                    self._write_error(error.code, error.message)
                    self.close_reason = error.code.value
                    self.half_closed = True  # nothing more will come to linger for
                    return
                await self._half_close()
                return
            self.last_activity = time.monotonic()
            self._note_layout(frame.layout)
            metrics.frame(frame.type, metrics.INBOUND)
            await self._on_frame(frame)

    def _note_layout(self, layout: Layout | None) -> None:
        if self.layout is None and layout is not None:
            self.layout = layout

    async def _half_close(self) -> None:
        """The client stopped sending: send what is still owed, then close."""
        self.half_closed = True
        await self._settled.wait()
        self.close_reason = "client_eof"

    async def _on_frame(self, frame: Frame) -> None:
        kind = frame.type
        if kind is FrameType.REQUEST:
            await self._on_request(frame)
        elif kind is FrameType.RESPONSE:
            await self._on_client_response(frame)
        elif kind is FrameType.HEALTH_CHECK:
            await self._on_health(frame)
        elif kind is FrameType.VERSION_NEGOTIATION:
            await self._on_negotiation(frame)
        elif kind is FrameType.ERROR:
            # Never answer an error with an error; note it and carry on.
            log.info("client sent an Error frame", extra={"client": self.client_address, "error": frame.text()[:200]})
        else:
            self._write_error(FrameErrorCode.UNEXPECTED_TYPE, f"{kind.label} frames are sent by the server only")
            await self._drain()

    async def _on_health(self, frame: Frame) -> None:
        if frame.payload:
            try:
                body = frame.json()
            except FrameError as error:
                self._write_error(error.code, f"HealthCheck payload: {error.message}")
                return await self._drain()
            if not isinstance(body, dict):
                self._write_error(FrameErrorCode.INVALID_JSON, "HealthCheck payload must be empty or a JSON object")
                return await self._drain()
        status = await self.bridge.health_status(self)
        self._write(FrameType.HEALTH_CHECK, encode_json(status))
        await self._drain()

    async def _on_negotiation(self, frame: Frame) -> None:
        if self.negotiated:
            self._write_error(FrameErrorCode.INVALID_NEGOTIATION, f"version {self.version} was already negotiated on this connection")
            return await self._drain()
        try:
            agreed = negotiate_version(frame.json())
        except FrameError as error:
            self._write_error(error.code, error.message)
            if error.fatal:
                self.close_reason = error.code.value
                self._begin_close(error.code.value)
                return
            return await self._drain()
        self.negotiated = True
        self.version = agreed
        self._write(FrameType.VERSION_ACK, encode_json({"agreed_version": agreed}))
        await self._drain()

    async def _on_client_response(self, frame: Frame) -> None:
        """The client's answer to a server-to-client request (sampling, elicitation, roots)."""
        try:
            message = jsonrpc.validate(frame.json())
        except FrameError as error:
            self._write_error(error.code, error.message)
            return await self._drain()
        except GatewayError as error:
            self._write_error(FrameErrorCode.UNEXPECTED_TYPE, f"a Response frame must carry a JSON-RPC response ({error.message})")
            return await self._drain()
        if not jsonrpc.is_response(message):
            self._write_error(
                FrameErrorCode.UNEXPECTED_TYPE, "a Response frame must carry a JSON-RPC response; send requests in Request frames"
            )
            return await self._drain()
        await self._forward(message, frame.payload)

    async def _on_request(self, frame: Frame) -> None:
        try:
            value = frame.json()
            if value is None:
                raise FrameError(FrameErrorCode.INVALID_JSON, "empty payload", fatal=False)
        except FrameError as error:
            return await self._reply_error(None, GatewayError(ErrorCode.PARSE_ERROR, f"Parse error: {error.message}"))
        try:
            candidate, token = open_envelope(value)
        except EnvelopeError as error:
            return await self._reply_error(None, GatewayError(ErrorCode.INVALID_REQUEST, f"Invalid Request: {error}"))
        try:
            message = jsonrpc.validate(candidate)
        except GatewayError as error:
            request_id = candidate.get("id") if isinstance(candidate, dict) and "method" in candidate else None
            return await self._reply_error(request_id if isinstance(request_id, (str, int)) else None, error)
        raw = frame.payload if candidate is value else None  # enveloped: re-serialize the message alone
        if token is not None and not self._accept_token(token):
            refusal = GatewayError(
                ErrorCode.INVALID_REQUEST,
                "Invalid Request: this connection is already authenticated; credentials cannot change on an open connection",
            )
            return await self._reply_error(message.get("id") if jsonrpc.is_request(message) else None, refusal)
        if jsonrpc.is_request(message):
            await self._start_request(message, raw)
        else:
            await self._forward(message, raw)

    def _accept_token(self, token: str) -> bool:
        """Credentials are the connection's: settable until the gateway WebSocket is open."""
        if self.upstream is None:
            self.token = token
            return True
        return token == self.token

    # -- requests -----------------------------------------------------------------------------------
    async def _start_request(self, message: Message, raw: bytes | None) -> None:
        request_id = message["id"]
        if self.draining:
            error = GatewayError(
                ErrorCode.SHUTTING_DOWN, "Server shutting down (goaway): reconnect to send new requests", data={"reason": "draining"}
            )
            return await self._reply_error(request_id, error)
        if request_id in self.pending:
            error = GatewayError(ErrorCode.INVALID_REQUEST, f"Invalid Request: id {request_id!r} is already in use by a request in flight")
            return await self._reply_error(request_id, error)
        if len(self.pending) >= self.config.max_in_flight:
            error = GatewayError(
                ErrorCode.INVALID_REQUEST,
                f"Too many requests in flight on this connection (limit {self.config.max_in_flight})",
                data={"limit": self.config.max_in_flight},
            )
            return await self._reply_error(request_id, error)
        if len(raw if raw is not None else jsonrpc.dumps(message)) > self.config.upstream_max_message_bytes:
            error = GatewayError(ErrorCode.INVALID_REQUEST, f"Message exceeds {self.config.upstream_max_message_bytes} bytes")
            return await self._reply_error(request_id, error)
        entry, rewritten = metrics.start_request(message, self.client_address)
        body = raw if raw is not None and rewritten is None else jsonrpc.dumps(rewritten or message)
        self.pending[request_id] = entry
        self.requests += 1
        self._settled.clear()
        ws = await self._ensure_upstream(request_id)
        if ws is None:
            return
        try:
            await ws.send(body, text=True)
        except ConnectionClosed:
            pass  # the upstream reader answers everything in flight, this one included

    async def _forward(self, message: Message, raw: bytes | None) -> None:
        """A notification, or the client's response to a server request: no answer is owed."""
        body = raw if raw is not None else jsonrpc.dumps(message)
        if len(body) > self.config.upstream_max_message_bytes:
            log.warning("message too large for the gateway dropped", extra={"client": self.client_address, "bytes": len(body)})
            return
        ws = await self._ensure_upstream(None)
        if ws is None:
            return
        try:
            await ws.send(body, text=True)
        except ConnectionClosed:
            pass

    async def _ensure_upstream(self, request_id: str | int | None) -> ClientConnection | None:
        """The gateway WebSocket, opened now if it is not yet. On failure the request (if any) is
        answered here and None returned."""
        if self.upstream is not None:
            return self.upstream
        try:
            ws = await open_upstream(self.config, self.token, self.client_address)
        except UpstreamUnauthorized as exc:
            log.warning("gateway refused the credentials", extra={"client": self.client_address, "status": exc.status})
            await self._fail_pending(GatewayError(ErrorCode.UNAUTHORIZED, f"Unauthorized: {exc}"))
            self._write_error(FrameErrorCode.UNAUTHORIZED, str(exc))
            self._begin_close(FrameErrorCode.UNAUTHORIZED.value)
            return None
        except UpstreamUnavailable as exc:
            log.warning("gateway unavailable", extra={"client": self.client_address, "error": str(exc)})
            if request_id is not None:
                entry = self.pending.get(request_id)
                if entry is not None:
                    entry.finish(None, "gateway unavailable")
                self._write(
                    FrameType.RESPONSE,
                    jsonrpc.dumps(
                        jsonrpc.error_response(request_id, GatewayError(ErrorCode.BACKEND_UNAVAILABLE, f"Gateway unavailable: {exc}"))
                    ),
                )
                self._pop(request_id)
                await self._drain()
            return None
        self.upstream = ws
        self.bridge.forget_unauthenticated(self)
        self._upstream_task = asyncio.create_task(self._relay_upstream(ws))
        return ws

    def _pop(self, request_id: Any) -> metrics.RequestSpan | None:
        entry = self.pending.pop(request_id, None) if isinstance(request_id, (str, int)) else None
        if not self.pending:
            self._settled.set()
            if self.draining:
                self._begin_close("drained")
        return entry

    async def _fail_pending(self, error: GatewayError) -> None:
        """Answer every request still in flight with `error` (never drop one silently)."""
        for request_id, entry in list(self.pending.items()):
            entry.finish(None, error.message)
            self._write(FrameType.RESPONSE, jsonrpc.dumps(jsonrpc.error_response(request_id, error)))
        self.pending.clear()
        self._settled.set()

    # -- the gateway side -----------------------------------------------------------------------------
    async def _relay_upstream(self, ws: ClientConnection) -> None:
        code: int | None = None
        reason = ""
        try:
            while True:
                raw = await ws.recv(decode=False)
                await self._on_upstream_message(raw if isinstance(raw, bytes) else bytes(raw))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            reason = closed.rcvd.reason if closed.rcvd is not None else ""
        except (ConnectionError, OSError):
            self._begin_close("connection_reset")
            return
        except Exception:
            log.exception("relaying from the gateway failed", extra={"client": self.client_address})
            self._write_error(FrameErrorCode.INTERNAL_ERROR, "the bridge failed on this connection")
            self._begin_close(FrameErrorCode.INTERNAL_ERROR.value)
            return
        if not self.closing:
            await self._upstream_lost(code, reason)

    async def _on_upstream_message(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("gateway sent a message that is not JSON; dropped")
            return
        if not isinstance(message, dict):
            return
        if "method" in message:
            self._write(FrameType.REQUEST, raw)  # server-to-client request or notification
        else:
            self._write(FrameType.RESPONSE, raw)
            entry = self._pop(message.get("id"))
            if entry is not None:
                entry.finish(message)
        await self._drain()

    async def _upstream_lost(self, code: int | None, reason: str) -> None:
        detail = f"close code {code}" + (f": {reason}" if reason else "") if code is not None else "connection lost"
        log.warning("gateway connection closed", extra={"client": self.client_address, "detail": detail})
        await self._fail_pending(GatewayError(ErrorCode.BACKEND_UNAVAILABLE, f"Gateway connection closed before it answered ({detail})"))
        if code == GOING_AWAY:
            self._write(FrameType.CONTROL, encode_json({"action": "goaway", "reason": "gateway_going_away"}))
        else:
            self._write_error(FrameErrorCode.UPSTREAM_CLOSED, f"the gateway closed the session ({detail})")
        self._begin_close("upstream_closed")

    # -- shutdown and idleness, driven by the bridge --------------------------------------------------
    def goaway(self, drain_timeout: float) -> None:
        """Server draining: tell the client, finish what is in flight, then close."""
        if self.closing or self.draining:
            return
        self.draining = True
        self._write(FrameType.CONTROL, encode_json({"action": "goaway", "reason": "shutdown", "drain_timeout_seconds": drain_timeout}))
        if not self.pending:
            self._begin_close("drained")

    async def abandon(self) -> None:
        """Drain timeout: answer what is still in flight with an error, then close."""
        await self._fail_pending(
            GatewayError(ErrorCode.SHUTTING_DOWN, "Server shut down before the gateway answered", data={"reason": "drain_timeout"})
        )
        self._begin_close("drain_timeout")

    def expire(self, code: FrameErrorCode, message: str) -> None:
        """A deadline of the bridge passed (idleness, authentication): say which, then close."""
        self._write_error(code, message)
        self._begin_close(code.value)

    # -- writing ---------------------------------------------------------------------------------------
    def _write(self, frame_type: FrameType, payload: bytes) -> None:
        """Queue one frame (a single write, so frames never interleave)."""
        if self.writer.transport.is_closing():
            return
        if len(payload) > self.config.max_frame_bytes:  # cannot happen for relayed messages (WebSocket max_size)
            log.error("outbound frame over the limit replaced by an error", extra={"bytes": len(payload)})
            frame_type, payload = FrameType.ERROR, error_payload(FrameErrorCode.INTERNAL_ERROR, "a message exceeded the frame limit")
        header = encode_header(frame_type, len(payload), layout=self.layout or Layout.V1, version=self.version)
        if len(payload) < COPY_LIMIT:
            self.writer.write(header + payload)  # one segment for small frames (TCP_NODELAY is on)
        else:
            self.writer.write(header)
            self.writer.write(payload)
        self.last_activity = time.monotonic()
        metrics.frame(frame_type, metrics.OUTBOUND)

    def _write_error(self, code: FrameErrorCode, message: str) -> None:
        self._write(FrameType.ERROR, error_payload(code, message))

    async def _reply_error(self, request_id: str | int | None, error: GatewayError) -> None:
        self._write(FrameType.RESPONSE, jsonrpc.dumps(jsonrpc.error_response(request_id, error)))
        await self._drain()

    async def _drain(self) -> None:
        """Wait while the client is behind; a client that stays behind is disconnected."""
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= WRITE_HIGH_WATER or transport.is_closing():
            return
        try:
            await asyncio.wait_for(self.writer.drain(), self.config.write_timeout)
        except TimeoutError:
            log.warning("client does not read its frames; disconnecting", extra={"client": self.client_address})
            transport.abort()
            self._begin_close(FrameErrorCode.SLOW_CONSUMER.value)
