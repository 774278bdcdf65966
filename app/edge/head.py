"""Bounds on an HTTP request head, enforced before anything reads it.

uvicorn's httptools protocol buffers a request head of any size for as long as the client takes to
send it: a 100 MB header is 100 MB of memory per connection before authentication, and a connection
that sends nothing (or a byte now and then) stays open forever. `BoundedHttpToolsProtocol` is that
protocol with three bounds:

- bytes: a head larger than `max_bytes` gets 431 and the connection closes, as soon as the bytes
  read for it pass the limit (memory per connection is bounded by `max_bytes` plus a socket read or
  two, 64 KiB to 256 KiB each); a pipelined head that began inside an earlier read may pass by up
  to one read;
- fields: more than `max_fields` header fields get 431;
- time: a head not complete `timeout_seconds` after its first byte (or after the connection opened)
  gets 408 and the connection closes; one that sent nothing is just closed. Idle keep-alive
  connections between requests are uvicorn's `timeout_keep_alive`.

The parser stays httptools (the fastest uvicorn offers); h11's `max_incomplete_event_size` bounds
bytes only, with a 400.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core import jsonrpc
from app.core.jsonrpc import ErrorCode, GatewayError

log = logging.getLogger("mcp_gateway.http")


@dataclass(frozen=True)
class HeadLimits:
    max_bytes: int
    max_fields: int
    timeout_seconds: float


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a head that is refused."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `HeadLimits` (see the module docstring)."""

    def __init__(self, *args: Any, limits: HeadLimits, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._in_head = True  # Waiting for (the rest of) a request head.
        self._head_bytes = 0  # Bytes received while the head is incomplete (the memory bound).
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    # -- connection events ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # Bytes of a chunk that arrives while a head is incomplete (a chunk in which a head
            # begins after a previous request is not counted: bounded by the read size anyway).
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._arm()
        super().data_received(data)
        # Checked once the parser has seen the chunk: a head completed in it resets the count, so
        # a body arriving with its head is never taken for part of it.
        if self._in_head and self._head_bytes > self.limits.max_bytes and not self.transport.is_closing():
            self._refuse(431, self._too_large())

    # -- parser callbacks ----------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        refusal = self._oversized()
        self._in_head, self._head_bytes = False, 0
        self._disarm()
        if refusal is not None:
            self._refusal = (431, refusal)
            raise _Refused  # httptools stops; uvicorn answers the parse error with send_400_response.
        super().on_headers_complete()

    def _oversized(self) -> str | None:
        """Checked once per head, not per field (a callback per field costs more than the check).
        The head is measured exactly only when the reads it came in exceed the limit: a head and
        its body in one large read, or a large head in a single read."""
        if len(self.headers) > self.limits.max_fields:
            return f"Request Header Fields Too Large: more than {self.limits.max_fields} header fields"
        if self._head_bytes > self.limits.max_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)  # `name: value\r\n`
            if size > self.limits.max_bytes:
                return self._too_large()
        return None

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # The next bytes on this connection are the next request's head.

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error: our own refusal when a callback raised it."""
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*self._refusal)

    # -- the head deadline ---------------------------------------------------------------------
    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.timeout_seconds, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # A response is still being sent: the next head may wait for it.
            return
        if self._head_bytes == 0:
            log.info("connection closed: no request within %g s", self.limits.timeout_seconds, extra={"client_address": self._peer()})
            self.transport.close()
            return
        self._refuse(408, f"Request Timeout: the request head was not complete within {self.limits.timeout_seconds:g} s")

    # -- refusing --------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON-RPC error body and close the connection."""
        self._disarm()
        self._in_head = False
        log.warning("request head refused: %s", message, extra={"status": status, "client_address": self._peer()})
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # A pipelined head during a response: no room for an answer.
            return
        body = jsonrpc.dumps(jsonrpc.error_response(None, GatewayError(ErrorCode.INVALID_REQUEST, message)))
        reason = _REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(body), body)
        )
        self.transport.close()

    def _too_large(self) -> str:
        return f"Request Header Fields Too Large: the request head exceeds {self.limits.max_bytes} bytes"

    def _peer(self) -> str | None:
        return self.client[0] if self.client else None


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def bounded_http_protocol(limits: HeadLimits) -> Any:
    """The `http` protocol to give uvicorn.Config: a factory it calls like the class."""
    return functools.partial(BoundedHttpToolsProtocol, limits=limits)
