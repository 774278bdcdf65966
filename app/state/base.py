"""The state interface every replica shares: sessions and pending server-to-client requests."""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.core.jsonrpc import ErrorCode, GatewayError


@dataclass(frozen=True)
class UpstreamBinding:
    """Which replica of a namespace serves a gateway session: its upstream MCP session id and the
    protocol version that replica negotiated (sent back as `MCP-Protocol-Version`)."""

    backend: str
    session_id: str | None = None
    protocol_version: str | None = None

    def encode(self) -> str:
        return orjson.dumps([self.backend, self.session_id, self.protocol_version]).decode()

    @classmethod
    def decode(cls, raw: str | bytes) -> UpstreamBinding:
        return cls(*orjson.loads(raw))


@dataclass
class SessionRecord:
    """One client's MCP session, as any replica needs it to continue the conversation."""

    id: str
    #: The owner's full identity (`Principal.identity`): only it may continue the session.
    principal: str
    protocol_version: str
    #: The owner's subject, as telemetry shows the caller.
    subject: str = ""
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    upstreams: dict[str, UpstreamBinding] = field(default_factory=dict)

    #: Fields stored as plain hash entries; upstream bindings are stored as `up:<namespace>`.
    def to_fields(self) -> dict[str, str]:
        fields = {
            "principal": self.principal,
            "subject": self.subject,
            "protocol_version": self.protocol_version,
            "client_info": orjson.dumps(self.client_info).decode(),
            "client_capabilities": orjson.dumps(self.client_capabilities).decode(),
            "created_at": repr(self.created_at),
        }
        for namespace, binding in self.upstreams.items():
            fields[f"up:{namespace}"] = binding.encode()
        return fields

    @classmethod
    def from_fields(cls, session_id: str, fields: dict[str, str]) -> SessionRecord:
        return cls(
            id=session_id,
            principal=fields["principal"],
            protocol_version=fields["protocol_version"],
            subject=fields.get("subject", ""),
            client_info=orjson.loads(fields.get("client_info", "{}")),
            client_capabilities=orjson.loads(fields.get("client_capabilities", "{}")),
            created_at=float(fields.get("created_at", "0")),
            upstreams={key[3:]: UpstreamBinding.decode(value) for key, value in fields.items() if key.startswith("up:")},
        )


class SessionLimitReached(GatewayError):
    """The principal already has its cap of live sessions: -32029 (HTTP 429) with the seconds
    until the soonest of them expires, unless it is used again or ended first."""

    def __init__(self, limit: int, seconds_left: float):
        retry_after = max(1, math.ceil(seconds_left))
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"Too many sessions: this principal has {limit} live sessions (max_sessions_per_principal); "
            f"end one (HTTP DELETE) or retry in {retry_after}s",
            data={"retryAfterSeconds": retry_after, "limit": limit, "scope": "sessions"},
            http_status=429,
            headers={"Retry-After": str(retry_after)},
        )


class StateStore(abc.ABC):
    """Sessions with a sliding TTL, plus short-lived routing entries for server-to-client requests."""

    def __init__(self, session_ttl: int):
        self.session_ttl = session_ttl

    @abc.abstractmethod
    async def create_session(self, record: SessionRecord, limit: int = 0) -> None:
        """Store a new session. With `limit`, raise SessionLimitReached (storing nothing) when its
        principal already has that many live sessions."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None:
        """Return the session and extend its TTL (sliding expiry), or None if unknown/expired."""

    @abc.abstractmethod
    async def bind_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> UpstreamBinding:
        """Store a binding unless one exists; return the binding that won (first writer wins)."""

    @abc.abstractmethod
    async def replace_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        """Overwrite a binding (the old upstream session died or its replica is gone)."""

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> SessionRecord | None:
        """Remove the session; return what was removed (None if it did not exist)."""

    @abc.abstractmethod
    async def count_sessions(self) -> int: ...

    @abc.abstractmethod
    async def take_expired(self, limit: int) -> list[SessionRecord]:
        """Remove up to `limit` expired sessions and return them, so their upstream sessions can be
        ended; each expired session is returned to exactly one caller, on any replica."""

    @abc.abstractmethod
    async def put_pending(self, session_id: str, request_id: str, route: dict[str, Any], ttl: int) -> None:
        """Remember where the answer to a server-to-client request must go."""

    @abc.abstractmethod
    async def pop_pending(self, session_id: str, request_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store can be reached (the health payload's `redis` field)."""

    async def close(self) -> None:
        return None
