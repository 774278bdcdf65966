"""What flows back from a backend to an edge: one message at a time, with its stream metadata."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.jsonrpc import Message


@dataclass(frozen=True)
class Event:
    """One message from upstream, with its SSE event id and `retry` hint when it came over SSE."""

    message: Message | None
    event_id: str | None = None
    retry: int | None = None
    #: The replica that sent it: a server-to-client request's answer must go back there.
    source: str | None = None
