"""An in-memory EventStore, so a Streamable HTTP test server can be resumed with Last-Event-ID."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.streamable_http import (
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp.types import JSONRPCMessage


@dataclass(frozen=True)
class _Event:
    stream_id: StreamId
    event_id: EventId
    message: JSONRPCMessage | None  # None is a priming event: an id for the client, no data


class InMemoryEventStore(EventStore):
    """Keeps every event for the life of the process (test servers are short-lived).

    Event ids are consecutive numbers, unique across all streams and sessions of the process,
    which makes them easy to read in test failures.
    """

    def __init__(self) -> None:
        self._events: list[_Event] = []
        self._positions: dict[EventId, int] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(len(self._events) + 1)
        self._positions[event_id] = len(self._events)
        self._events.append(_Event(stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        position = self._positions.get(last_event_id)
        if position is None:
            return None
        stream_id = self._events[position].stream_id
        for event in self._events[position + 1 :]:
            if event.stream_id == stream_id and event.message is not None:
                await send_callback(EventMessage(event.message, event.event_id))
        return stream_id
