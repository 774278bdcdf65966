"""Requests being answered on this replica, by (session id, request id): a second request with the
same id in the same session is refused, and a cancellation goes to the namespace its request went to."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.jsonrpc import ErrorCode, GatewayError, RequestId


@dataclass
class Entry:
    """A request being answered: the namespace it was routed to, once it is."""

    namespace: str | None = None


class InFlight:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, RequestId], Entry] = {}

    def begin(self, session_id: str, request_id: RequestId) -> Entry:
        """Take the request's id for the session, or refuse it while another request holds it."""
        key = (session_id, request_id)
        if key in self._entries:
            raise GatewayError(
                ErrorCode.INVALID_REQUEST,
                "Invalid Request: a request with this id is already in flight in this session; use a new id",
                http_status=400,
            )
        entry = self._entries[key] = Entry()
        return entry

    def release(self, session_id: str, request_id: RequestId, entry: Entry) -> None:
        """Forget a request (not a later one that reuses its id)."""
        key = (session_id, request_id)
        if self._entries.get(key) is entry:
            del self._entries[key]

    def get(self, session_id: str, request_id: object) -> Entry | None:
        if not isinstance(request_id, (str, int)):
            return None
        return self._entries.get((session_id, request_id))
