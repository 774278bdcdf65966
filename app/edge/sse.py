"""Server-Sent Events framing for Streamable HTTP responses and the standalone stream."""

from __future__ import annotations

from app.core.events import Event
from app.core.jsonrpc import dumps

SSE_HEADERS = {
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",  # Tell nginx-style proxies to stream, never buffer.
}
KEEPALIVE = b": keepalive\n\n"


def encode(event: Event) -> bytes:
    """One SSE event; a message-less event is a priming event (id and empty data)."""
    head = b""
    if event.event_id is not None:
        head += b"id: " + event.event_id.encode() + b"\n"
    if event.retry is not None:
        head += b"retry: " + str(int(event.retry)).encode() + b"\n"
    if event.message is None:
        return head + b"data: \n\n"
    return head + b"event: message\ndata: " + dumps(event.message) + b"\n\n"
