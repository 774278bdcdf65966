"""What the gateway needs from one backend replica, whatever its transport."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from app.config import BackendConfig
from app.core import jsonrpc
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message

#: How much of a backend's own words (an invalid message's complaint) an error may quote.
MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class Handshake:
    """What the gateway declares when it opens an upstream session on a client's behalf."""

    protocol_version: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    client_info: dict[str, Any] = field(default_factory=dict)

    def initialize_params(self) -> dict[str, Any]:
        return {
            "protocolVersion": self.protocol_version,
            "capabilities": self.capabilities,
            "clientInfo": self.client_info or {"name": "mcp-gateway", "version": "0"},
        }


@dataclass
class Opened:
    """An upstream session: its id (None for connection-scoped transports) and initialize result."""

    session_id: str | None
    protocol_version: str
    result: dict[str, Any]


class UpstreamSessionGone(Exception):
    """The backend no longer knows the upstream session (HTTP 404): open a new one and retry."""


class BackendFailure(GatewayError):
    """The backend could not be reached or did not answer in time."""

    def __init__(self, namespace: str, backend: str, reason: str, timeout: bool = False, connect: bool = False, trips: bool = True):
        code = ErrorCode.BACKEND_TIMEOUT if timeout else ErrorCode.BACKEND_UNAVAILABLE
        what = "timed out" if timeout else "is unavailable"
        super().__init__(
            code,
            f"Backend for namespace '{namespace}' {what}: {reason}",
            data={"namespace": namespace, "backend": backend},
        )
        self.connect = connect
        #: Does it count against the replica's circuit breaker? Only the backend's own failures do
        #: (unreachable, timed out, connection broken, HTTP 5xx), not a refusal such as HTTP 4xx.
        self.trips = trips


class Backend(abc.ABC):
    """An MCP client to one replica of a server. Subclasses keep their connections pooled and reused;
    what the gateway decides about the replica (breaker, health) lives in `app.pipeline.replica`."""

    #: True when one shared upstream session serves every gateway session (stdio, WebSocket).
    shared_session = False

    def __init__(self, namespace: str, config: BackendConfig):
        self.namespace = namespace
        self.config = config
        self.name = config.name
        #: The most recent initialize result seen from this replica (capabilities to merge).
        self.server_result: dict[str, Any] | None = None

    def failure(self, reason: str, *, timeout: bool = False, connect: bool = False, trips: bool = True) -> BackendFailure:
        return BackendFailure(self.namespace, self.name, reason, timeout=timeout, connect=connect, trips=trips)

    def decode(self, raw: bytes | str) -> Message:
        """One JSON-RPC message from this backend. Anything else (invalid JSON, an array, an
        object that is not JSON-RPC 2.0) is the backend's failure, never the client's parse error."""
        try:
            message = jsonrpc.loads(raw)
        except GatewayError as exc:
            raise self.invalid(exc.message) from None
        if isinstance(message, list):
            raise self.invalid("a JSON array where one message belongs")
        try:
            return jsonrpc.validate(message)
        except GatewayError as exc:
            raise self.invalid(exc.message.removeprefix("Invalid Request: ")) from None

    def invalid(self, what: str) -> BackendFailure:
        """The backend broke the protocol: a failure that counts against its breaker."""
        return self.failure(f"invalid message from {self.name}: {what[:MAX_REASON_CHARS]}")

    async def start(self) -> None:
        """Prepare pools; connection-scoped transports connect lazily on first use."""

    @abc.abstractmethod
    async def open_session(self, handshake: Handshake, headers: dict[str, str]) -> Opened:
        """Run `initialize` + `notifications/initialized` upstream."""

    @abc.abstractmethod
    def request(
        self, session_id: str | None, protocol_version: str | None, message: Message, headers: dict[str, str], owner: str
    ) -> AsyncGenerator[Event, None]:
        """Send a request; yield what the backend sends for it, ending with its response."""

    @abc.abstractmethod
    async def send(
        self,
        session_id: str | None,
        protocol_version: str | None,
        message: Message,
        headers: dict[str, str],
        owner: str = "",
    ) -> None:
        """Send a notification or a response (to a server-to-client request)."""

    async def listen(self, session_id: str | None, protocol_version: str | None, last_event_id: str | None) -> AsyncGenerator[Event, None]:
        """The backend's standalone stream (HTTP GET), opening with a message-less event once it is
        connected. Connection-scoped transports have none: their unsolicited messages reach
        sessions through the gateway's hub instead."""
        nothing: tuple[Event, ...] = ()
        for event in nothing:
            yield event

    async def end_session(self, session_id: str | None, protocol_version: str | None) -> None:
        """Tell the backend an upstream session is over (HTTP DELETE); best effort."""

    async def close(self) -> None:
        """Release connections and processes."""
