"""The relay: a request forwarded to its namespace, and what comes back mapped for the client.
Server-to-client requests get an id unique in the session (the answer's route is stored, so any
replica may receive it) and are refused when the client lacks the capability they need; a
shared-connection backend's log messages are filtered by the session's `logging/setLevel`;
a namespace's `list_changed` makes the catalogue forget what it learned of it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message, error_response
from app.core.protocol import LOG_LEVELS
from app.pipeline.context import RequestContext
from app.pipeline.in_flight import InFlight
from app.pipeline.routing import Namespace
from app.pipeline.upstreams import Upstreams
from app.state import SessionRecord, StateStore

#: How long the gateway remembers where a server-to-client request's answer must go.
PENDING_TTL_SECONDS = 600
#: Server-to-client methods and the client capability each needs.
CLIENT_CAPABILITY = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
#: Sessions whose `logging/setLevel` this replica keeps (for shared-connection backends); the
#: oldest is forgotten beyond this.
MAX_LOG_LEVELS = 65536


def shared(ns: Namespace) -> bool:
    """One upstream connection serves every gateway session (stdio, WebSocket backends)."""
    return any(r.shared_session for r in ns.replicas)


class Relay:
    def __init__(
        self,
        store: StateStore,
        upstreams: Upstreams,
        in_flight: InFlight,
        passthrough: bool,
        list_changed: Callable[[str, str], None],
    ):
        self.store = store
        self.upstreams = upstreams
        self.in_flight = in_flight
        #: One unprefixed namespace with one backend: ids pass through untouched.
        self.passthrough = passthrough
        self.list_changed = list_changed
        #: Each session's `logging/setLevel`, applied here to what shared-connection backends log.
        self._log_levels: dict[str, str] = {}

    async def forward(self, ctx: RequestContext, record: SessionRecord, ns: Namespace, message: Message) -> AsyncGenerator[Event, None]:
        """Call the namespace and relay what comes back, rewriting what crosses the gateway."""
        entry = self.in_flight.get(record.id, message["id"])
        if entry is not None:
            entry.namespace = ns.name  # Where a cancellation must go.
        async with aclosing(self.upstreams.call(record, ns, message, ctx.headers, ctx.observer)) as events:
            async for event in events:
                out = await self.relay(record, ns, event)
                if out is not None:
                    yield out

    async def fan_out(self, ctx: RequestContext, record: SessionRecord, message: Message, namespaces: list[Namespace]) -> None:
        """Send a request to several namespaces; their answers are not the client's."""

        async def one(ns: Namespace) -> None:
            request = {**message, "id": f"gateway-{secrets.token_hex(4)}"}
            async for _ in self.upstreams.call(record, ns, request, ctx.headers, ctx.observer):
                pass

        await asyncio.gather(*(one(ns) for ns in namespaces), return_exceptions=True)

    async def relay(self, record: SessionRecord, ns: Namespace, event: Event) -> Event | None:
        """One event from the namespace as the client must see it, or None when it is not the client's."""
        event_id = f"{ns.name}:{event.event_id}" if event.event_id is not None else None
        message = event.message
        if message is not None and "method" in message:
            if "id" in message:
                message = await self._server_request(record, ns, event.source, message)
                if message is None:
                    return None
            elif message["method"] == "notifications/message" and self._filtered_log(record, ns, event.source, message):
                return None
            else:
                self.list_changed(ns.name, message["method"])
        return Event(message, event_id, event.retry)

    async def _server_request(self, record: SessionRecord, ns: Namespace, source: str | None, message: Message) -> Message | None:
        """Relay a server-to-client request: check the client can answer it, give it an id unique
        in this session, and remember where the answer goes (any replica may receive it)."""
        needed = CLIENT_CAPABILITY.get(message["method"])
        if needed is not None and needed not in record.client_capabilities:
            error = GatewayError(ErrorCode.METHOD_NOT_FOUND, f"The client did not declare the '{needed}' capability")
            await self.upstreams.reply(record, ns, source, error_response(message["id"], error))
            return None
        client_id = message["id"] if self.passthrough else f"gw-{secrets.token_hex(8)}"
        route = {"namespace": ns.name, "backend": source, "id": message["id"]}
        await self.store.put_pending(record.id, str(client_id), route, PENDING_TTL_SECONDS)
        return {**message, "id": client_id}

    # -- log levels ---------------------------------------------------------------------------
    def set_log_level(self, session_id: str, level: str) -> None:
        self._log_levels.pop(session_id, None)
        self._log_levels[session_id] = level
        while len(self._log_levels) > MAX_LOG_LEVELS:
            del self._log_levels[next(iter(self._log_levels))]

    def forget_session(self, session_id: str) -> None:
        self._log_levels.pop(session_id, None)

    def _filtered_log(self, record: SessionRecord, ns: Namespace, source: str | None, message: Message) -> bool:
        """A shared-connection backend's log message below the session's `logging/setLevel`."""
        replica = ns.replica(source or "")
        threshold = self._log_levels.get(record.id)
        params = message.get("params")
        level = params.get("level") if isinstance(params, dict) else None
        if replica is None or not replica.shared_session or threshold is None or level not in LOG_LEVELS:
            return False
        return LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold)
