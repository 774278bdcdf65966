"""In-process state: the embedded default for a single gateway process."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from app.state.base import (
    SessionLimitReached,
    SessionRecord,
    StateStore,
    UpstreamBinding,
)

#: Bound on remembered server-to-client requests; expired ones are swept when it is reached.
MAX_PENDING = 10_000


class MemoryStore(StateStore):
    """Dicts with expiry times. An expired session is invisible at once and removed by
    `take_expired`, which hands it over so its upstream sessions are ended."""

    def __init__(self, session_ttl: int):
        super().__init__(session_ttl)
        self._sessions: dict[str, tuple[SessionRecord, float]] = {}
        self._owned: defaultdict[str, set[str]] = defaultdict(set)
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    def _live(self, session_id: str) -> SessionRecord | None:
        entry = self._sessions.get(session_id)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _remove(self, session_id: str) -> SessionRecord | None:
        entry = self._sessions.pop(session_id, None)
        if entry is None:
            return None
        owned = self._owned.get(entry[0].principal)
        if owned is not None:
            owned.discard(session_id)
            if not owned:
                del self._owned[entry[0].principal]
        return entry[0]

    async def create_session(self, record: SessionRecord, limit: int = 0) -> None:
        now = time.monotonic()
        if limit:
            expiries = [self._sessions[sid][1] for sid in self._owned.get(record.principal, ()) if self._sessions[sid][1] > now]
            if len(expiries) >= limit:
                raise SessionLimitReached(limit, min(expiries) - now)
        self._sessions[record.id] = (record, now + self.session_ttl)
        self._owned[record.principal].add(record.id)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        record = self._live(session_id)
        if record is not None:
            self._sessions[session_id] = (record, time.monotonic() + self.session_ttl)
        return record

    async def bind_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> UpstreamBinding:
        record = self._live(session_id)
        if record is None:
            return binding
        return record.upstreams.setdefault(namespace, binding)

    async def replace_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        record = self._live(session_id)
        if record is not None:
            record.upstreams[namespace] = binding

    async def delete_session(self, session_id: str) -> SessionRecord | None:
        live = self._live(session_id) is not None
        record = self._remove(session_id)
        return record if live else None

    async def count_sessions(self) -> int:
        now = time.monotonic()
        return sum(1 for _, expiry in self._sessions.values() if expiry > now)

    async def take_expired(self, limit: int) -> list[SessionRecord]:
        now = time.monotonic()
        expired = [sid for sid, (_, expiry) in self._sessions.items() if expiry <= now][:limit]
        return [record for sid in expired if (record := self._remove(sid)) is not None]

    async def put_pending(self, session_id: str, request_id: str, route: dict[str, Any], ttl: int) -> None:
        now = time.monotonic()
        if len(self._pending) >= MAX_PENDING:
            self._pending = {key: entry for key, entry in self._pending.items() if entry[1] > now}
        self._pending[(session_id, request_id)] = (route, now + ttl)

    async def pop_pending(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        entry = self._pending.pop((session_id, request_id), None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def ping(self) -> bool:
        return True
