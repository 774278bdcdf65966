"""Standalone streams: messages for a session outside any request. This replica's hub plus each
upstream session's own stream, including upstream sessions opened after the stream started (they
are announced on `Bindings`, or found in the store when another replica opened them); with
`Last-Event-ID`, a resumption of that one upstream stream. Also where a shared connection's
messages for no call are delivered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from app.backends.multiplexed import BROADCAST_METHODS
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.pipeline.context import RequestContext
from app.pipeline.hub import Bindings, Hub
from app.pipeline.relay import Relay
from app.pipeline.routing import Namespace
from app.state import SessionRecord, StateStore, UpstreamBinding

log = logging.getLogger("mcp_gateway")

#: How often a standalone stream looks for upstream sessions other replicas opened.
BINDING_POLL_SECONDS = 5.0
#: How long a first request waits for the session's new upstream stream to connect.
ATTACH_TIMEOUT_SECONDS = 2.0


class Streams:
    def __init__(
        self,
        store: StateStore,
        namespaces: dict[str, Namespace],
        hub: Hub,
        bindings: Bindings,
        relay: Relay,
        list_changed: Callable[[str, str], None],
    ):
        self.store = store
        self.namespaces = namespaces
        self.hub = hub
        self.bindings = bindings
        self.relay = relay
        self.list_changed = list_changed

    async def listen(self, ctx: RequestContext, record: SessionRecord, last_event_id: str | None) -> AsyncGenerator[Event, None]:
        """The session's standalone stream. Checks happen here, before the stream starts, so they
        can still be HTTP errors."""
        if not last_event_id:
            return self._standalone(record, ctx.principal.can_read)
        ns_name, _, upstream_id = last_event_id.partition(":")
        ns = self.namespaces.get(ns_name)
        if ns is None or ns.name not in record.upstreams:
            raise GatewayError(ErrorCode.INVALID_PARAMS, "Unknown Last-Event-ID", http_status=400)
        return self._resume(record, ns, upstream_id)

    async def _upstream_events(self, record: SessionRecord, ns: Namespace, resume: str | None) -> AsyncGenerator[Event, None]:
        """One upstream stream, relayed; a message-less, id-less event says it has connected."""
        binding = record.upstreams[ns.name]
        replica = ns.replica(binding.backend)
        if replica is None:
            return
        try:
            async with aclosing(replica.client.listen(binding.session_id, binding.protocol_version, resume)) as events:
                async for event in events:
                    relayed = await self.relay.relay(record, ns, event)
                    if relayed is not None:
                        yield relayed
        except GatewayError as exc:
            log.info("upstream stream ended: %s", exc.message, extra={"namespace": ns.name})

    async def _resume(self, record: SessionRecord, ns: Namespace, upstream_id: str) -> AsyncGenerator[Event, None]:
        async with aclosing(self._upstream_events(record, ns, upstream_id)) as events:
            async for event in events:
                if event.message is not None or event.event_id is not None:
                    yield event

    async def _standalone(self, record: SessionRecord, can_read: Callable[[str], bool]) -> AsyncGenerator[Event, None]:
        queue: asyncio.Queue[Event] = asyncio.Queue(256)
        pumps: dict[str, asyncio.Task[None]] = {}
        followed: dict[str, UpstreamBinding] = {}
        connected: dict[str, asyncio.Event] = {}
        inbox = self.hub.subscribe(record.id, can_read)

        async def pump(ns: Namespace) -> None:
            async for event in self._upstream_events(record, ns, None):
                if event.message is None and event.event_id is None:
                    connected[ns.name].set()
                else:
                    await queue.put(event)
            connected[ns.name].set()

        async def attach(name: str, binding: UpstreamBinding | None = None) -> None:
            """Follow the upstream session of `name` (the new `binding`, else the one the record
            holds, replacing a stream that follows an older one); wait (briefly) until it is open."""
            if binding is not None:
                record.upstreams[name] = binding
            current = record.upstreams.get(name)
            if current is not None and name in self.namespaces and followed.get(name) != current:
                if name in pumps:
                    pumps[name].cancel()
                followed[name] = current
                connected[name] = asyncio.Event()
                pumps[name] = asyncio.create_task(pump(self.namespaces[name]))
            if name in connected:
                try:
                    await asyncio.wait_for(connected[name].wait(), ATTACH_TIMEOUT_SECONDS)
                except TimeoutError:
                    log.warning("upstream stream slow to open", extra={"namespace": name, "session_id": record.id})

        async def pump_hub() -> None:
            while True:
                await queue.put(Event(await inbox.get()))

        async def follow_other_replicas() -> None:
            """Upstream sessions that other replicas open appear in the store; poll for them."""
            while True:
                await asyncio.sleep(BINDING_POLL_SECONDS)
                stored = await self.store.get_session(record.id)
                if stored is None:
                    return
                record.upstreams.update(stored.upstreams)
                for name in stored.upstreams:
                    await attach(name)

        self.bindings.follow(record.id, attach)
        for name in list(record.upstreams):
            await attach(name)
        helpers = [asyncio.create_task(pump_hub()), asyncio.create_task(follow_other_replicas())]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in [*helpers, *pumps.values()]:
                task.cancel()
            self.hub.unsubscribe(record.id, inbox)
            self.bindings.unfollow(record.id, attach)

    def deliver_unsolicited(self, namespace: str, owner: str | None, message: Message) -> None:
        """A shared connection's message for no call: to its session, or (broadcasts) to every
        session here whose principal may read the namespace."""
        if message.get("method") in BROADCAST_METHODS:
            self.list_changed(namespace, message["method"])
        self.hub.publish(owner, message, namespace)
