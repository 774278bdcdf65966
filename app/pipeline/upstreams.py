"""Binding gateway sessions to upstream sessions, lazily, once per namespace, shared by replicas.

The binding (replica name, upstream session id, negotiated version) is stored in the gateway
session, so whichever gateway replica receives the next request continues the same upstream
session. Every call passes its replica's circuit breaker first: a replica whose circuit is open
is skipped (a session bound to it moves to another replica), and when no replica of the namespace
may be called the call fails at once. A replica that refuses the connection is marked down and
the call moves to another one; an upstream session the backend has forgotten is re-opened once,
transparently; a read-only request that fails before any answer is retried once on another
replica. `tools/call` is never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

from app import telemetry
from app.backends import BackendFailure, Handshake, UpstreamSessionGone
from app.core.background import BackgroundTasks
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, Message, is_response
from app.pipeline.breaker import CircuitOpen, Permit
from app.pipeline.context import RequestObserver
from app.pipeline.hub import Bindings
from app.pipeline.replica import Replica
from app.pipeline.routing import Namespace
from app.state import SessionRecord, StateStore, UpstreamBinding

log = logging.getLogger("mcp_gateway.upstreams")

#: Requests that only read, so sending one again is harmless: a failure of the backend before
#: any answer retries once on another replica. `tools/call` is never among them.
RETRYABLE_READS = frozenset(
    {
        "ping",
        "tools/list",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "completion/complete",
    }
)


class Upstreams:
    def __init__(self, store: StateStore, down_seconds: float, bindings: Bindings):
        self.store = store
        self.down_seconds = down_seconds
        #: Where a session's new upstream session is announced, before the first request goes
        #: there, so a standalone stream can attach to it and miss nothing the backend sends. It
        #: is given the binding: the stream's own copy of the session record predates it.
        self.bindings = bindings
        self._background = BackgroundTasks()

    # -- circuit breakers ---------------------------------------------------------------------
    @staticmethod
    def _allow(replica: Replica, user: str) -> Permit | None:
        with telemetry.span(telemetry.BREAKER_ALLOW, namespace=replica.namespace, backend=replica.name, user=user) as span:
            permit = replica.breaker.acquire()
            span.set_attribute("allowed", permit is not None)
            span.set_attribute("circuit.state", replica.breaker.raw_state.value)
        return permit

    @staticmethod
    def _record(replica: Replica, permit: Permit, outcome: bool | BaseException | None, user: str) -> None:
        """Report a call's outcome to its breaker: only the backend's own failures count."""
        if permit.done:
            return
        if isinstance(outcome, BaseException):
            outcome = False if isinstance(outcome, BackendFailure) and outcome.trips else None
        with telemetry.span(telemetry.BREAKER_RECORD, namespace=replica.namespace, backend=replica.name, user=user) as span:
            span.set_attribute("outcome", {True: "success", False: "failure", None: "ignored"}[outcome])
            if outcome is None:
                permit.release()
            elif outcome:
                permit.success()
            else:
                permit.failure()
            span.set_attribute("circuit.state", replica.breaker.raw_state.value)

    def _admit(self, ns: Namespace, avoid: Replica | None, tried: set[str], user: str) -> tuple[Replica, Permit] | None:
        """The best replica whose breaker lets a call through, with its permit."""
        for replica in ns.ranked(avoid):
            if replica.name in tried:
                continue
            permit = self._allow(replica, user)
            if permit is not None:
                return replica, permit
        return None

    @staticmethod
    def circuit_open(ns: Namespace) -> CircuitOpen:
        """The refusal when every replica's circuit is open."""
        waits = [b.breaker.retry_after() for b in ns.replicas]
        return CircuitOpen(ns.name, min(waits) if waits else 1.0)

    # -- binding ------------------------------------------------------------------------------
    async def _open(
        self, record: SessionRecord, ns: Namespace, headers: dict[str, str], avoid: Replica | None
    ) -> tuple[Replica, UpstreamBinding, Permit]:
        """Open an upstream session on the best replica, trying each replica at most once. The
        permit returned is the call's: opening is part of the call, not a call of its own."""
        handshake = Handshake(record.protocol_version, record.client_capabilities, record.client_info)
        tried: set[str] = set()
        last: BackendFailure | None = None
        while (admitted := self._admit(ns, avoid, tried, record.subject)) is not None:
            replica, permit = admitted
            tried.add(replica.name)
            try:
                opened = await replica.client.open_session(handshake, headers)
            except BackendFailure as failure:
                self._record(replica, permit, failure, record.subject)
                if not (failure.connect or failure.trips):
                    raise  # The backend answered and refused: another replica would too.
                if failure.connect:
                    replica.mark_down(self.down_seconds)
                else:
                    replica.healthy = False
                log.warning(
                    "backend failed to open a session, trying another replica: %s",
                    failure.message,
                    extra={"namespace": ns.name, "backend": replica.name},
                )
                last = failure
                continue
            except BaseException:
                permit.release()
                raise
            replica.healthy = True
            return replica, UpstreamBinding(replica.name, opened.session_id, opened.protocol_version), permit
        if last is not None:
            raise last
        raise self.circuit_open(ns)

    async def _binding(
        self, record: SessionRecord, ns: Namespace, headers: dict[str, str], stale: UpstreamBinding | None
    ) -> tuple[Replica, UpstreamBinding, Permit]:
        current = record.upstreams.get(ns.name)
        avoid = ns.replica(stale.backend) if stale else None
        if current is not None and current != stale:
            replica = ns.replica(current.backend)
            if replica is not None and (replica.available or len(ns.replicas) == 1):
                permit = self._allow(replica, record.subject)
                if permit is not None:
                    return replica, current, permit
                if not any(b.breaker.allows() for b in ns.replicas if b is not replica):
                    raise self.circuit_open(ns)
                log.info(
                    "circuit open: moving the session to another replica",
                    extra={"namespace": ns.name, "backend": replica.name, "session_id": record.id},
                )
                avoid = replica
        replica, fresh, permit = await self._open(record, ns, headers, avoid)
        try:
            if replica.shared_session:
                return replica, fresh, permit  # Connection-scoped: nothing per session to remember.
            if current is None:
                winner = await self.store.bind_upstream(record.id, ns.name, fresh)
                if winner != fresh:  # Another replica bound this session first: use its upstream session.
                    self._background.spawn(replica.client.end_session(fresh.session_id, fresh.protocol_version))
                    chosen = ns.replica(winner.backend) or replica
                    if chosen is not replica:
                        permit.release()
                        other = self._allow(chosen, record.subject)
                        if other is None:
                            raise self.circuit_open(ns)
                        replica, permit = chosen, other
                    fresh = winner
            else:
                await self.store.replace_upstream(record.id, ns.name, fresh)
                old = ns.replica(current.backend)
                if old is not None and old.breaker.allows():  # No goodbye to a replica whose circuit is open.
                    self._background.spawn(old.client.end_session(current.session_id, current.protocol_version))
            record.upstreams[ns.name] = fresh
            await self.bindings.bound(record.id, ns.name, fresh)
        except BaseException:
            permit.release()
            raise
        return replica, fresh, permit

    # -- calls --------------------------------------------------------------------------------
    async def call(
        self, record: SessionRecord, ns: Namespace, message: Message, headers: dict[str, str], observer: RequestObserver
    ) -> AsyncGenerator[Event, None]:
        """Send a request; yield what comes back. Moves to another replica when the first refused
        the connection (the request was never sent), re-opens a forgotten upstream session once,
        and retries a read-only request once on another replica after a backend failure, as long
        as nothing has been relayed yet. `observer` learns the namespace and replica of each
        attempt; behind open circuits, the namespace alone: it is the namespace's failure, not
        the gateway's, so the errors of a namespace behind open circuits show under its name."""
        stale: UpstreamBinding | None = None
        reopened = moved = False
        request_id = message.get("id")
        method = message.get("method")
        read_only = method in RETRYABLE_READS
        user = record.subject
        while True:
            try:
                replica, binding, permit = await self._binding(record, ns, headers, stale)
            except CircuitOpen:
                observer.route(ns.name)
                raise
            replica.in_flight += 1
            started = False
            observer.route(ns.name, replica.name)
            span = telemetry.start_span(telemetry.BACKEND_CALL, namespace=ns.name, backend=replica.name, user=user, method=method)
            # W3C trace context of this call, as HTTP headers and in params._meta (any transport).
            outgoing, sent_headers = telemetry.carry(span, message, headers)
            try:
                events = replica.client.request(binding.session_id, binding.protocol_version, outgoing, sent_headers, record.id)
                async with aclosing(events):
                    async for event in events:
                        if event.message is not None and is_response(event.message) and event.message.get("id") == request_id:
                            self._record(replica, permit, True, user)  # Before the yield: the consumer may stop here.
                        started = True
                        yield event
                self._record(replica, permit, True, user)
                replica.healthy = True
                return
            except UpstreamSessionGone:
                self._record(replica, permit, None, user)
                if reopened:
                    raise replica.client.failure("the backend keeps forgetting its session", trips=False) from None
                log.info("upstream session expired; opening a new one", extra={"namespace": ns.name, "backend": replica.name})
                reopened = True
                stale = binding
            except BackendFailure as failure:
                telemetry.fail(span, failure)
                self._record(replica, permit, failure, user)
                replica.healthy = replica.healthy if failure.code == ErrorCode.BACKEND_TIMEOUT else False
                if started or moved or not any(b.breaker.allows() for b in ns.replicas if b is not replica):
                    raise
                if failure.connect:
                    replica.mark_down(self.down_seconds)
                elif read_only and failure.trips:
                    log.info(
                        "%s failed (%s); retrying once on another replica",
                        method,
                        failure.message,
                        extra={"namespace": ns.name, "backend": replica.name},
                    )
                else:
                    raise  # It may have reached the backend: never sent twice.
                moved = True
                stale = binding
            finally:
                permit.release()  # Nothing when settled; a cancelled call says nothing about the backend.
                replica.in_flight -= 1
                span.end()

    async def send(self, record: SessionRecord, ns: Namespace, message: Message, headers: dict[str, str]) -> None:
        """Deliver a notification to the namespace's upstream session(s) for this gateway session:
        the bound replica, or every replica of a shared-connection namespace (calls are spread
        over them; each ignores what it does not know)."""
        binding = record.upstreams.get(ns.name)
        if binding is not None:
            targets = [(ns.replica(binding.backend), binding)]
        else:
            targets = [(b, UpstreamBinding(b.name)) for b in ns.replicas if b.shared_session]
        jobs = [
            replica.client.send(bound.session_id, bound.protocol_version, message, headers, owner=record.id)
            for replica, bound in targets
            if replica is not None
        ]
        await asyncio.gather(*jobs, return_exceptions=True)

    async def reply(self, record: SessionRecord, ns: Namespace, backend_name: str | None, message: Message) -> None:
        """Answer a server-to-client request on the replica that sent it."""
        replica = ns.replica(backend_name or "")
        if replica is None:
            return
        binding = record.upstreams.get(ns.name)
        bound = binding if binding is not None and binding.backend == replica.name else UpstreamBinding(replica.name)
        await replica.client.send(bound.session_id, bound.protocol_version, message, {}, owner=record.id)

    async def end(self, record: SessionRecord, namespaces: dict[str, Namespace]) -> None:
        """Close every upstream session the gateway session opened (HTTP DELETE), best effort."""
        jobs = []
        for ns_name, binding in record.upstreams.items():
            ns = namespaces.get(ns_name)
            replica = ns.replica(binding.backend) if ns else None
            if replica is not None:
                jobs.append(replica.client.end_session(binding.session_id, binding.protocol_version))
        await asyncio.gather(*jobs, return_exceptions=True)
