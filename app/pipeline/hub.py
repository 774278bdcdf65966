"""Delivery of messages that belong to no request (list changes, server requests on a shared
connection) to the sessions connected to this replica: their WebSocket or HTTP GET stream. A
message from a namespace reaches only subscribers whose principal may read that namespace."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

from app.core.jsonrpc import Message
from app.state import UpstreamBinding

#: Per-subscriber bound: a client that does not read loses notifications, the gateway no memory.
MAX_QUEUED = 256

#: Whether a subscriber may see a namespace's messages (its principal's `can_read`).
CanRead = Callable[[str], bool]


def _everything(namespace: str) -> bool:
    return True


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[str, dict[asyncio.Queue[Message], CanRead]] = defaultdict(dict)

    def subscribe(self, session_id: str, can_read: CanRead = _everything) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(MAX_QUEUED)
        self._subscribers[session_id][queue] = can_read
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[Message]) -> None:
        subscribers = self._subscribers.get(session_id)
        if subscribers is not None:
            subscribers.pop(queue, None)
            if not subscribers:
                del self._subscribers[session_id]

    def publish(self, session_id: str | None, message: Message, namespace: str | None = None) -> int:
        """Queue for one session, or for every session when `session_id` is None, leaving out those
        that may not read `namespace` (when the message comes from one); returns how many got it."""
        groups = self._subscribers.values() if session_id is None else [self._subscribers.get(session_id, {})]
        delivered = 0
        for queues in groups:
            for queue, can_read in queues.items():
                if (namespace is None or can_read(namespace)) and not queue.full():
                    queue.put_nowait(message)
                    delivered += 1
        return delivered


#: Follows a session's new upstream binding: (namespace, binding), awaited before the first request.
Follower = Callable[[str, UpstreamBinding], Awaitable[None]]


class Bindings:
    """Where new upstream bindings are announced: the standalone stream open on this replica for a
    session follows them, and the call that opened one waits (briefly) until the stream is
    attached, so it misses nothing the backend sends. Whoever opens a binding announces it; it
    does not need to know who listens."""

    def __init__(self) -> None:
        self._followers: dict[str, Follower] = {}

    def follow(self, session_id: str, follower: Follower) -> None:
        self._followers[session_id] = follower

    def unfollow(self, session_id: str, follower: Follower) -> None:
        if self._followers.get(session_id) is follower:
            del self._followers[session_id]

    async def bound(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        follower = self._followers.get(session_id)
        if follower is not None:
            await follower(namespace, binding)
