"""In-process state: the embedded default for a single gateway process."""

from __future__ import annotations

import time
from typing import Any

from app.state.base import SessionRecord, StateStore, UpstreamBinding


#: Bound on remembered server-to-client requests; expired ones are swept when it is reached.
MAX_PENDING = 10_000


class MemoryStore(StateStore):
    """Dicts with expiry times; expired entries are dropped when touched or counted."""

    def __init__(self, session_ttl: int):
        super().__init__(session_ttl)
        self._sessions: dict[str, tuple[SessionRecord, float]] = {}
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    def _live(self, session_id: str) -> SessionRecord | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._sessions[session_id]
            return None
        return entry[0]

    async def create_session(self, record: SessionRecord) -> None:
        self._sessions[record.id] = (record, time.monotonic() + self.session_ttl)

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
        record = self._live(session_id)
        self._sessions.pop(session_id, None)
        return record

    async def count_sessions(self) -> int:
        now = time.monotonic()
        for session_id in [sid for sid, (_, expiry) in self._sessions.items() if expiry <= now]:
            del self._sessions[session_id]
        return len(self._sessions)

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
