"""Binding gateway sessions to upstream sessions, lazily, once per namespace, shared by replicas.

The binding (replica name, upstream session id, negotiated version) is stored in the gateway
session, so whichever gateway replica receives the next request continues the same upstream
session. A replica that cannot be reached is marked down and the call moves to another one; an
upstream session the backend has forgotten is re-opened once, transparently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from app.backends import Backend, BackendFailure, Event, Handshake, UpstreamSessionGone
from app.jsonrpc import ErrorCode, Message
from app.routing import Namespace
from app.state import SessionRecord, StateStore, UpstreamBinding

log = logging.getLogger("mcp_gateway.upstreams")

OnBound = Callable[[str, str], Awaitable[None]]


class Upstreams:
    def __init__(self, store: StateStore, down_seconds: float, on_bound: OnBound | None = None):
        self.store = store
        self.down_seconds = down_seconds
        #: Awaited whenever a session gets a new upstream session, before the first request goes
        #: there, so a standalone stream can attach to it and miss nothing the backend sends.
        self.on_bound = on_bound
        self._background: set[asyncio.Task[None]] = set()

    async def _open(self, record: SessionRecord, ns: Namespace, headers: dict[str, str], avoid: Backend | None) -> tuple[Backend, UpstreamBinding]:
        """Open an upstream session on a healthy replica, trying each replica at most once."""
        handshake = Handshake(record.protocol_version, record.client_capabilities, record.client_info)
        tried: set[str] = set()
        backend = ns.pick(exclude=avoid)
        while True:
            tried.add(backend.name)
            try:
                opened = await backend.open_session(handshake, headers)
                backend.healthy = True
                return backend, UpstreamBinding(backend.name, opened.session_id, opened.protocol_version)
            except BackendFailure as failure:
                if not failure.connect:
                    raise
                backend.mark_down(self.down_seconds)
                log.warning("backend unreachable, trying another replica", extra={"namespace": ns.name, "backend": backend.name})
                backend = ns.pick()
                if backend.name in tried:
                    raise

    async def _binding(
        self, record: SessionRecord, ns: Namespace, headers: dict[str, str], stale: UpstreamBinding | None
    ) -> tuple[Backend, UpstreamBinding]:
        current = record.upstreams.get(ns.name)
        if current is not None and current != stale:
            backend = ns.backend(current.backend)
            if backend is not None and (backend.available or len(ns.backends) == 1):
                return backend, current
        avoid = ns.backend(stale.backend) if stale else None
        backend, fresh = await self._open(record, ns, headers, avoid)
        if backend.shared_session:
            return backend, fresh  # Connection-scoped: nothing per session to remember.
        if current is None:
            winner = await self.store.bind_upstream(record.id, ns.name, fresh)
            if winner != fresh:  # Another replica bound this session first: use its upstream session.
                self._spawn(backend.end_session(fresh.session_id, fresh.protocol_version))
                backend = ns.backend(winner.backend) or backend
                fresh = winner
        else:
            await self.store.replace_upstream(record.id, ns.name, fresh)
            old = ns.backend(current.backend)
            if old is not None:
                self._spawn(old.end_session(current.session_id, current.protocol_version))
        record.upstreams[ns.name] = fresh
        if self.on_bound is not None:
            await self.on_bound(record.id, ns.name)
        return backend, fresh

    async def call(self, record: SessionRecord, ns: Namespace, message: Message, headers: dict[str, str]) -> AsyncIterator[Event]:
        """Send a request; yield what comes back. Retries once on a forgotten upstream session or a
        replica that refused the connection before the request was sent."""
        stale: UpstreamBinding | None = None
        for attempt in range(2):
            backend, binding = await self._binding(record, ns, headers, stale)
            backend.in_flight += 1
            started = False
            try:
                async for event in backend.request(binding.session_id, binding.protocol_version, message, headers, record.id):
                    started = True
                    yield event
                backend.healthy = True
                return
            except UpstreamSessionGone:
                if attempt:
                    raise backend.failure("the backend keeps forgetting its session") from None
                log.info("upstream session expired; opening a new one", extra={"namespace": ns.name, "backend": backend.name})
                stale = binding
            except BackendFailure as failure:
                backend.healthy = backend.healthy if failure.code == ErrorCode.BACKEND_TIMEOUT else False
                if started or not failure.connect or attempt or len(ns.backends) == 1:
                    raise
                backend.mark_down(self.down_seconds)
                stale = binding
            finally:
                backend.in_flight -= 1

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

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
