"""Gateway sessions: `initialize` (answered by the gateway itself; upstream sessions open later,
lazily), finding the caller's session, keeping a connection's session alive, and ending one (its
upstream sessions end with it, however it ends: DELETE, a closed WebSocket, or expiry)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from app import __version__, telemetry
from app.auth import ANONYMOUS
from app.core.jsonrpc import ErrorCode, GatewayError, Message, result_response
from app.core.protocol import check_params, negotiate
from app.pipeline.context import RequestContext
from app.pipeline.discovery import Discovery
from app.pipeline.relay import Relay
from app.pipeline.routing import Namespace
from app.pipeline.upstreams import Upstreams
from app.state import SessionRecord, StateStore

log = logging.getLogger("mcp_gateway")

#: What the session keeps of the client's `clientInfo` (forwarded to backends in their handshake).
CLIENT_INFO_FIELDS = ("name", "title", "version")
#: Bound on each of `clientInfo` (as kept) and `capabilities`, serialized: both are stored for the
#: session's lifetime and read back on every request.
MAX_CLIENT_METADATA_BYTES = 8192

#: The rate-limit step: spend one request of the caller's budgets, or raise RATE_LIMITED.
RateLimit = Callable[[RequestContext], Awaitable[None]]


def new_session_id() -> str:
    """Unguessable, URL- and header-safe (visible ASCII as the specification requires)."""
    return secrets.token_urlsafe(24)


def _bounded(name: str, value: dict[str, Any]) -> dict[str, Any]:
    size = len(orjson.dumps(value))
    if size > MAX_CLIENT_METADATA_BYTES:
        raise GatewayError(
            ErrorCode.INVALID_PARAMS,
            f"Invalid params: initialize {name} is {size} bytes serialized; at most {MAX_CLIENT_METADATA_BYTES} are accepted",
        )
    return value


def client_metadata(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `clientInfo` (only the fields the gateway passes on) and `capabilities` a session keeps,
    each refused with -32602 when over MAX_CLIENT_METADATA_BYTES."""
    raw_info = params.get("clientInfo")
    raw_capabilities = params.get("capabilities")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    capabilities: dict[str, Any] = raw_capabilities if isinstance(raw_capabilities, dict) else {}
    kept = {key: info[key] for key in CLIENT_INFO_FIELDS if isinstance(info.get(key), str)}
    return _bounded("clientInfo", kept), _bounded("capabilities", capabilities)


class Sessions:
    def __init__(
        self,
        store: StateStore,
        namespaces: dict[str, Namespace],
        discovery: Discovery,
        upstreams: Upstreams,
        relay: Relay,
        rate_limit: RateLimit,
        max_per_principal: int,
    ):
        self.store = store
        self.namespaces = namespaces
        self.discovery = discovery
        self.upstreams = upstreams
        self.relay = relay
        self.rate_limit = rate_limit
        self.max_per_principal = max_per_principal

    async def initialize(self, ctx: RequestContext, message: Message) -> tuple[SessionRecord, Message]:
        """The gateway answers `initialize` itself; upstream sessions open later, lazily."""
        scope = telemetry.RequestScope(ctx, message)
        with scope.active():
            try:
                record, response = await self._initialize(ctx.observed_by(scope), message, scope)
            except Exception as error:
                scope.fail(error)
                raise
            scope.finish(response)
        return record, response

    async def _initialize(self, ctx: RequestContext, message: Message, scope: telemetry.RequestScope) -> tuple[SessionRecord, Message]:
        check_params(message)
        await self.rate_limit(ctx)
        params = message.get("params") or {}
        version = negotiate(params.get("protocolVersion"))
        client_info, client_capabilities = client_metadata(params)
        record = SessionRecord(
            id=new_session_id(),
            principal=ctx.principal.identity,
            subject=ctx.principal.subject,
            protocol_version=version,
            client_info=client_info,
            client_capabilities=client_capabilities,
        )
        limit = self.max_per_principal if ctx.principal.kind != ANONYMOUS.kind else 0
        with telemetry.span(telemetry.SESSION_CREATE, session_id=record.id, user=ctx.principal):
            await self.store.create_session(record, limit)
        scope.set_session(record.id)
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.discovery.capabilities(),
            "serverInfo": {"name": "mcp-gateway", "title": "MCP Gateway", "version": __version__},
        }
        if instructions := self.discovery.instructions():
            result["instructions"] = instructions
        return record, result_response(message["id"], result)

    async def session(self, ctx: RequestContext, session_id: str) -> SessionRecord:
        """The caller's session. Another principal's session id is answered exactly like an unknown
        one (404), so ids cannot be probed, and the attempt is logged."""
        record = await self.store.get_session(session_id)
        if record is not None and record.principal != ctx.principal.identity:
            telemetry.auth_attempt("session", "failure")
            log.warning(
                "session presented by another principal",
                extra={"session_id": session_id, "user": ctx.principal.subject, "owner": record.principal},
            )
            record = None
        if record is None:
            raise GatewayError(
                ErrorCode.SESSION_NOT_FOUND,
                "Session not found: it expired or was ended; send initialize to start a new one",
                http_status=404,
            )
        return record

    async def keep_alive(self, record: SessionRecord) -> None:
        """Refresh a connection-bound session's stored record, writing it back from the
        connection's own copy when the store lost it (Redis restarted empty): a WebSocket cannot
        send `initialize` again, so its connection is the session's source of truth."""
        if await self.store.get_session(record.id) is None:
            log.warning("session record lost by the store; restored from its connection", extra={"session_id": record.id})
            await self.store.create_session(record)

    async def end(self, record: SessionRecord) -> None:
        removed = await self.store.delete_session(record.id)
        await self.ended(removed or record)

    async def ended(self, record: SessionRecord) -> None:
        """A session ended (DELETE, its WebSocket closed, or it expired): so do its upstream sessions."""
        self.relay.forget_session(record.id)
        telemetry.current_instruments().session_ended(time.time() - record.created_at)
        await self.upstreams.end(record, self.namespaces)
