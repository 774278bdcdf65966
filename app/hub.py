"""Delivery of messages that belong to no request (list changes, server requests on a shared
connection) to the sessions connected to this replica: their WebSocket or HTTP GET stream."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from app.jsonrpc import Message

#: Per-subscriber bound: a client that does not read loses notifications, the gateway no memory.
MAX_QUEUED = 256


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)
    def subscribe(self, session_id: str) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(MAX_QUEUED)
        self._subscribers[session_id].add(queue)
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[Message]) -> None:
        subscribers = self._subscribers.get(session_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[session_id]

    def publish(self, session_id: str | None, message: Message) -> int:
        """Queue for one session, or for every session when `session_id` is None; returns how many got it."""
        groups = self._subscribers.values() if session_id is None else [self._subscribers.get(session_id, set())]
        delivered = 0
        for queues in groups:
            for queue in queues:
                if not queue.full():
                    queue.put_nowait(message)
                    delivered += 1
        return delivered
