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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

from app import telemetry
from app.backends import Backend, BackendFailure, Handshake, UpstreamSessionGone
from app.core.background import BackgroundTasks
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, Message, is_response
from app.pipeline.breaker import CircuitOpen, Permit
from app.pipeline.routing import Namespace
from app.state import SessionRecord, StateStore, UpstreamBinding

log = logging.getLogger("mcp_gateway.upstreams")

OnBound = Callable[[str, str, UpstreamBinding], Awaitable[None]]

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
    def __init__(self, store: StateStore, down_seconds: float, on_bound: OnBound | None = None):
        self.store = store
        self.down_seconds = down_seconds
        #: Awaited whenever a session gets a new upstream session, before the first request goes
        #: there, so a standalone stream can attach to it and miss nothing the backend sends. It
        #: is given the binding: the stream's own copy of the session record predates it.
        self.on_bound = on_bound
        self._background = BackgroundTasks()

    # -- circuit breakers ---------------------------------------------------------------------
    @staticmethod
    def _allow(backend: Backend, user: str) -> Permit | None:
        with telemetry.span(telemetry.BREAKER_ALLOW, namespace=backend.namespace, backend=backend.name, user=user) as span:
            permit = backend.breaker.acquire()
            span.set_attribute("allowed", permit is not None)
            span.set_attribute("circuit.state", backend.breaker.raw_state.value)
        return permit

    @staticmethod
    def _record(backend: Backend, permit: Permit, outcome: bool | BaseException | None, user: str) -> None:
        """Report a call's outcome to its breaker: only the backend's own failures count."""
        if permit.done:
            return
        if isinstance(outcome, BaseException):
            outcome = False if isinstance(outcome, BackendFailure) and outcome.trips else None
        with telemetry.span(telemetry.BREAKER_RECORD, namespace=backend.namespace, backend=backend.name, user=user) as span:
            span.set_attribute("outcome", {True: "success", False: "failure", None: "ignored"}[outcome])
            if outcome is None:
                permit.release()
            elif outcome:
                permit.success()
            else:
                permit.failure()
            span.set_attribute("circuit.state", backend.breaker.raw_state.value)

    def _admit(self, ns: Namespace, avoid: Backend | None, tried: set[str], user: str) -> tuple[Backend, Permit] | None:
        """The best replica whose breaker lets a call through, with its permit."""
        for backend in ns.ranked(avoid):
            if backend.name in tried:
                continue
            permit = self._allow(backend, user)
            if permit is not None:
                return backend, permit
        return None

    @staticmethod
    def circuit_open(ns: Namespace) -> CircuitOpen:
        """The refusal when every replica's circuit is open. It is the namespace's failure, not
        the gateway's: the request is labelled with the namespace (no replica served it), so the
        errors of a namespace behind open circuits show under its name."""
        telemetry.note_route(ns.name)
        waits = [b.breaker.retry_after() for b in ns.backends]
        return CircuitOpen(ns.name, min(waits) if waits else 1.0)

    # -- binding ------------------------------------------------------------------------------
    async def _open(
        self, record: SessionRecord, ns: Namespace, headers: dict[str, str], avoid: Backend | None
    ) -> tuple[Backend, UpstreamBinding, Permit]:
        """Open an upstream session on the best replica, trying each replica at most once. The
        permit returned is the call's: opening is part of the call, not a call of its own."""
        handshake = Handshake(record.protocol_version, record.client_capabilities, record.client_info)
        tried: set[str] = set()
        last: BackendFailure | None = None
        while (admitted := self._admit(ns, avoid, tried, record.subject)) is not None:
            backend, permit = admitted
            tried.add(backend.name)
            try:
                opened = await backend.open_session(handshake, headers)
            except BackendFailure as failure:
                self._record(backend, permit, failure, record.subject)
                if not (failure.connect or failure.trips):
                    raise  # The backend answered and refused: another replica would too.
                if failure.connect:
                    backend.mark_down(self.down_seconds)
                else:
                    backend.healthy = False
                log.warning(
                    "backend failed to open a session, trying another replica: %s",
                    failure.message,
                    extra={"namespace": ns.name, "backend": backend.name},
                )
                last = failure
                continue
            except BaseException:
                permit.release()
                raise
            backend.healthy = True
            return backend, UpstreamBinding(backend.name, opened.session_id, opened.protocol_version), permit
        if last is not None:
            raise last
        raise self.circuit_open(ns)

    async def _binding(
        self, record: SessionRecord, ns: Namespace, headers: dict[str, str], stale: UpstreamBinding | None
    ) -> tuple[Backend, UpstreamBinding, Permit]:
        current = record.upstreams.get(ns.name)
        avoid = ns.backend(stale.backend) if stale else None
        if current is not None and current != stale:
            backend = ns.backend(current.backend)
            if backend is not None and (backend.available or len(ns.backends) == 1):
                permit = self._allow(backend, record.subject)
                if permit is not None:
                    return backend, current, permit
                if not any(b.breaker.allows() for b in ns.backends if b is not backend):
                    raise self.circuit_open(ns)
                log.info(
                    "circuit open: moving the session to another replica",
                    extra={"namespace": ns.name, "backend": backend.name, "session_id": record.id},
                )
                avoid = backend
        backend, fresh, permit = await self._open(record, ns, headers, avoid)
        try:
            if backend.shared_session:
                return backend, fresh, permit  # Connection-scoped: nothing per session to remember.
            if current is None:
                winner = await self.store.bind_upstream(record.id, ns.name, fresh)
                if winner != fresh:  # Another replica bound this session first: use its upstream session.
                    self._background.spawn(backend.end_session(fresh.session_id, fresh.protocol_version))
                    chosen = ns.backend(winner.backend) or backend
                    if chosen is not backend:
                        permit.release()
                        other = self._allow(chosen, record.subject)
                        if other is None:
                            raise self.circuit_open(ns)
                        backend, permit = chosen, other
                    fresh = winner
            else:
                await self.store.replace_upstream(record.id, ns.name, fresh)
                old = ns.backend(current.backend)
                if old is not None and old.breaker.allows():  # No goodbye to a replica whose circuit is open.
                    self._background.spawn(old.end_session(current.session_id, current.protocol_version))
            record.upstreams[ns.name] = fresh
            if self.on_bound is not None:
                await self.on_bound(record.id, ns.name, fresh)
        except BaseException:
            permit.release()
            raise
        return backend, fresh, permit

    # -- calls --------------------------------------------------------------------------------
    async def call(self, record: SessionRecord, ns: Namespace, message: Message, headers: dict[str, str]) -> AsyncIterator[Event]:
        """Send a request; yield what comes back. Moves to another replica when the first refused
        the connection (the request was never sent), re-opens a forgotten upstream session once,
        and retries a read-only request once on another replica after a backend failure, as long
        as nothing has been relayed yet."""
        stale: UpstreamBinding | None = None
        reopened = moved = False
        request_id = message.get("id")
        method = message.get("method")
        read_only = method in RETRYABLE_READS
        user = record.subject
        while True:
            backend, binding, permit = await self._binding(record, ns, headers, stale)
            backend.in_flight += 1
            started = False
            span = telemetry.start_span(telemetry.BACKEND_CALL, namespace=ns.name, backend=backend.name, user=user, method=method)
            # W3C trace context of this call, as HTTP headers and in params._meta (any transport).
            outgoing, sent_headers = telemetry.carry(span, message, headers)
            try:
                events = backend.request(binding.session_id, binding.protocol_version, outgoing, sent_headers, record.id)
                async with aclosing(events):
                    async for event in events:
                        if event.message is not None and is_response(event.message) and event.message.get("id") == request_id:
                            self._record(backend, permit, True, user)  # Before the yield: the consumer may stop here.
                        started = True
                        yield event
                self._record(backend, permit, True, user)
                backend.healthy = True
                return
            except UpstreamSessionGone:
                self._record(backend, permit, None, user)
                if reopened:
                    raise backend.failure("the backend keeps forgetting its session", trips=False) from None
                log.info("upstream session expired; opening a new one", extra={"namespace": ns.name, "backend": backend.name})
                reopened = True
                stale = binding
            except BackendFailure as failure:
                telemetry.fail(span, failure)
                self._record(backend, permit, failure, user)
                backend.healthy = backend.healthy if failure.code == ErrorCode.BACKEND_TIMEOUT else False
                if started or moved or not any(b.breaker.allows() for b in ns.backends if b is not backend):
                    raise
                if failure.connect:
                    backend.mark_down(self.down_seconds)
                elif read_only and failure.trips:
                    log.info(
                        "%s failed (%s); retrying once on another replica",
                        method,
                        failure.message,
                        extra={"namespace": ns.name, "backend": backend.name},
                    )
                else:
                    raise  # It may have reached the backend: never sent twice.
                moved = True
                stale = binding
            finally:
                permit.release()  # Nothing when settled; a cancelled call says nothing about the backend.
                backend.in_flight -= 1
                span.end()

    async def send(self, record: SessionRecord, ns: Namespace, message: Message, headers: dict[str, str]) -> None:
        """Deliver a notification to the namespace's upstream session(s) for this gateway session:
        the bound replica, or every replica of a shared-connection namespace (calls are spread
        over them; each ignores what it does not know)."""
        binding = record.upstreams.get(ns.name)
        if binding is not None:
            targets = [(ns.backend(binding.backend), binding)]
        else:
            targets = [(b, UpstreamBinding(b.name)) for b in ns.backends if b.shared_session]
        jobs = [
            backend.send(bound.session_id, bound.protocol_version, message, headers, owner=record.id)
            for backend, bound in targets
            if backend is not None
        ]
        await asyncio.gather(*jobs, return_exceptions=True)

    async def reply(self, record: SessionRecord, ns: Namespace, backend_name: str | None, message: Message) -> None:
        """Answer a server-to-client request on the replica that sent it."""
        backend = ns.backend(backend_name or "")
        if backend is None:
            return
        binding = record.upstreams.get(ns.name)
        bound = binding if binding is not None and binding.backend == backend.name else UpstreamBinding(backend.name)
        await backend.send(bound.session_id, bound.protocol_version, message, {}, owner=record.id)

    async def end(self, record: SessionRecord, namespaces: dict[str, Namespace]) -> None:
        """Close every upstream session the gateway session opened (HTTP DELETE), best effort."""
        jobs = []
        for ns_name, binding in record.upstreams.items():
            ns = namespaces.get(ns_name)
            backend = ns.backend(binding.backend) if ns else None
            if backend is not None:
                jobs.append(backend.end_session(binding.session_id, binding.protocol_version))
        await asyncio.gather(*jobs, return_exceptions=True)
