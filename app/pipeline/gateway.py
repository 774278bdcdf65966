"""The pipeline every transport shares: session → route → backend call → map the answer back.

Transports hand it decoded JSON-RPC messages with a `RequestContext` and get back `Event`s to write
(a single response, or a stream of notifications and server requests ending with the response).
It knows nothing of HTTP or WebSocket framing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from app import __version__, telemetry
from app.auth import ANONYMOUS, Principal
from app.backends.multiplexed import (
    BROADCAST_METHODS,
    GATEWAY_HANDSHAKE,
    MultiplexedBackend,
)
from app.config import GatewayConfig
from app.core.events import Event
from app.core.jsonrpc import (
    ErrorCode,
    GatewayError,
    Message,
    RequestId,
    error_response,
    is_response,
    result_response,
)
from app.core.protocol import LOG_LEVELS, check_params, negotiate
from app.pipeline.aggregate import LISTS, ListKind, aggregate, expose_items, page_result
from app.pipeline.expiry import ExpirySweeper
from app.pipeline.health_checks import HealthChecker
from app.pipeline.hub import Hub
from app.pipeline.ratelimit import RateLimiter
from app.pipeline.replica import Replica
from app.pipeline.routing import PROMPT, RESOURCE, TEMPLATE, TOOL, Namespace, Router
from app.pipeline.upstreams import Upstreams
from app.state import SessionRecord, StateStore, UpstreamBinding

log = logging.getLogger("mcp_gateway")

#: How often a standalone stream looks for upstream sessions other replicas opened.
BINDING_POLL_SECONDS = 5.0
#: How long a first request waits for the session's new upstream stream to connect.
ATTACH_TIMEOUT_SECONDS = 2.0
#: How long the gateway remembers where a server-to-client request's answer must go.
PENDING_TTL_SECONDS = 600
#: Server-to-client methods and the client capability each needs.
CLIENT_CAPABILITY = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
#: Requests routed to one namespace, and how to find it: by name (kind) or by URI.
ROUTED_BY_NAME = {"tools/call": TOOL, "prompts/get": PROMPT}
ROUTED_BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")
#: What the session keeps of the client's `clientInfo` (forwarded to backends in their handshake).
CLIENT_INFO_FIELDS = ("name", "title", "version")
#: Bound on each of `clientInfo` (as kept) and `capabilities`, serialized: both are stored for the
#: session's lifetime and read back on every request.
MAX_CLIENT_METADATA_BYTES = 8192
#: Every server gets these capabilities advertised; backends' own are merged in.
BASE_CAPABILITIES: dict[str, Any] = {
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True},
    "logging": {},
    "completions": {},
}
#: The gateway introduces itself under its own name when it only wants a server's capabilities.
DISCOVERY_HANDSHAKE = GATEWAY_HANDSHAKE
#: After relearning a namespace's names or URIs (for a name or URI nobody knew), the gateway does
#: not list that namespace again for this long unless the namespace says its list changed.
RELEARN_SECONDS = 10.0
#: Sessions whose `logging/setLevel` this replica keeps (for shared-connection backends); the
#: oldest is forgotten beyond this.
MAX_LOG_LEVELS = 65536
LIST_CHANGED_KIND = {
    "notifications/tools/list_changed": (TOOL,),
    "notifications/prompts/list_changed": (PROMPT,),
    "notifications/resources/list_changed": (RESOURCE, TEMPLATE),
}


@dataclass
class RequestContext:
    """Who is asking, over what, for the pipeline's steps and telemetry."""

    protocol: str
    principal: Principal = ANONYMOUS
    client_address: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


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
    info = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
    capabilities = params.get("capabilities") if isinstance(params.get("capabilities"), dict) else {}
    kept = {key: info[key] for key in CLIENT_INFO_FIELDS if isinstance(info.get(key), str)}
    return _bounded("clientInfo", kept), _bounded("capabilities", capabilities)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif value is not None and (into.get(key) is None or value is True):
            into[key] = value
    return into


class Gateway:
    def __init__(self, config: GatewayConfig, store: StateStore, namespaces: dict[str, Namespace], hub: Hub, limiter: RateLimiter):
        self.config = config
        self.store = store
        self.hub = hub
        self.router = Router(namespaces, config.tool_separator)
        self.limiter = limiter
        self.health_checks = HealthChecker(self.replicas, config.health_checks)
        self.upstreams = Upstreams(store, config.replica_down_seconds, on_bound=self._attach_streams)
        self.expiry = ExpirySweeper(store, self._ended)
        #: Standalone streams open on this replica: session id -> attach(namespace, binding).
        self._followers: dict[str, Callable[[str, UpstreamBinding | None], Awaitable[None]]] = {}
        self.ready = False
        #: Requests being answered on this replica, by (session id, request id). A second request
        #: with the same id in the same session is refused.
        self._in_flight: dict[tuple[str, RequestId], _InFlight] = {}
        #: Relearning unknown names and URIs: when each (kind, namespace) was last listed, and
        #: the listing under way, which concurrent requests share.
        self._learned_at: dict[tuple[str, str], float] = {}
        self._learning: dict[tuple[str, str], asyncio.Future[None]] = {}
        #: Each session's `logging/setLevel`, applied here to what shared-connection backends log.
        self._log_levels: dict[str, str] = {}
        self._drops = _DropLog()
        only = self.router.single
        #: One unprefixed namespace with one backend: ids pass through untouched.
        self.passthrough = only is not None and not only.prefix and len(only.replicas) == 1
        for replica in self.replicas:
            if isinstance(replica.client, MultiplexedBackend):
                replica.client.deliver = partial(self._deliver_unsolicited, replica.namespace)

    @property
    def namespaces(self) -> dict[str, Namespace]:
        return self.router.namespaces

    @property
    def replicas(self) -> list[Replica]:
        return [r for ns in self.namespaces.values() for r in ns.replicas]

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, discovery_timeout: float = 10.0) -> None:
        """Learn each namespace's capabilities (one replica each) so `initialize` can merge them."""
        await asyncio.gather(*(r.client.start() for r in self.replicas))
        await asyncio.gather(*(self._discover(ns, discovery_timeout) for ns in self.namespaces.values()))
        self.health_checks.start()
        self.expiry.start()
        self.ready = True

    async def _discover(self, ns: Namespace, timeout: float) -> None:
        replica = ns.pick()
        try:
            async with asyncio.timeout(timeout):
                opened = await replica.client.open_session(DISCOVERY_HANDSHAKE, {})
                await replica.client.end_session(opened.session_id, opened.protocol_version)
            replica.healthy = True
        except (GatewayError, TimeoutError) as exc:
            replica.healthy = False
            log.warning("backend discovery failed: %s", exc, extra={"namespace": ns.name, "backend": replica.name})

    async def close(self) -> None:
        await self.expiry.close()
        await self.health_checks.close()
        await asyncio.gather(*(r.client.close() for r in self.replicas), return_exceptions=True)

    def capabilities(self) -> dict[str, Any]:
        merged = _merge({}, BASE_CAPABILITIES)
        for replica in self.replicas:
            _merge(merged, (replica.client.server_result or {}).get("capabilities") or {})
        return merged

    def instructions(self) -> str | None:
        parts = []
        for ns in self.namespaces.values():
            text = next((r.client.server_result.get("instructions") for r in ns.replicas if r.client.server_result), None)
            if text:
                parts.append(f"## {ns.name}\n{text}")
        return "\n\n".join(parts) or None

    # -- sessions -----------------------------------------------------------------------------
    async def initialize(self, ctx: RequestContext, message: Message) -> tuple[SessionRecord, Message]:
        """The gateway answers `initialize` itself; upstream sessions open later, lazily."""
        scope = telemetry.RequestScope(ctx, message)
        with scope.active():
            try:
                record, response = await self._initialize(ctx, message, scope)
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
        limit = self.config.max_sessions_per_principal if ctx.principal.kind != ANONYMOUS.kind else 0
        with telemetry.span(telemetry.SESSION_CREATE, session_id=record.id, user=ctx.principal):
            await self.store.create_session(record, limit)
        scope.set_session(record.id)
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": {"name": "mcp-gateway", "title": "MCP Gateway", "version": __version__},
        }
        if instructions := self.instructions():
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

    async def end_session(self, record: SessionRecord) -> None:
        removed = await self.store.delete_session(record.id)
        await self._ended(removed or record)

    async def _ended(self, record: SessionRecord) -> None:
        """A session ended (DELETE, its WebSocket closed, or it expired): so do its upstream sessions."""
        self._log_levels.pop(record.id, None)
        telemetry.instruments().session_ended(time.time() - record.created_at)
        await self.upstreams.end(record, self.namespaces)

    # -- requests -----------------------------------------------------------------------------
    def handle_request(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncIterator[Event]:
        """`_handle_request` observed: its span is current while it works, and the request is
        counted and logged once when its response passes (see app.telemetry.requests)."""
        scope = telemetry.RequestScope(ctx, message, record.id, record.protocol_version)
        return scope.run(self._handle_request(ctx, record, message))

    async def _handle_request(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncIterator[Event]:
        """Everything to send back for one request, the response last. A failure before anything
        was sent raises GatewayError (so HTTP can answer with its status code); a failure after
        that ends the stream with a JSON-RPC error response. A request reusing the id of one still
        in flight in the session is refused: its answer could not be told from the other's."""
        key = (record.id, message["id"])
        if key in self._in_flight:
            raise GatewayError(
                ErrorCode.INVALID_REQUEST,
                "Invalid Request: a request with this id is already in flight in this session; use a new id",
                http_status=400,
            )
        entry = self._in_flight[key] = _InFlight()
        started = False
        try:
            check_params(message)
            async with aclosing(self._dispatch(ctx, record, message)) as events:
                async for event in events:
                    started = True
                    if event.message is not None and is_response(event.message) and event.message.get("id") == message["id"]:
                        self._release(key, entry)  # The client may reuse the id once it has the answer.
                    yield event
        except Exception as exc:
            self._release(key, entry)
            error = exc if isinstance(exc, GatewayError) else _internal_error(exc, message, record)
            log.warning("request failed: %s", error.message, extra={"method": message.get("method"), "session_id": record.id})
            if not started:
                raise error from None
            yield Event(error_response(message.get("id"), error))
        finally:
            self._release(key, entry)

    def _release(self, key: tuple[str, RequestId], entry: _InFlight) -> None:
        """Forget a request (not a later one that reuses its id)."""
        if self._in_flight.get(key) is entry:
            del self._in_flight[key]

    async def rate_limit(self, ctx: RequestContext, namespace: str | None = None) -> None:
        """The rate-limit step: spend one request of the caller's budgets, or raise RATE_LIMITED."""
        await self.limiter.check(ctx.principal, ctx.client_address, namespace)

    def _target(self, method: str, params: dict[str, Any]) -> str | None:
        """The namespace a request goes to when that is known without asking a backend."""
        ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
        if method in ROUTED_BY_NAME or (method == "completion/complete" and ref.get("type") == "ref/prompt"):
            name = params.get("name") if method in ROUTED_BY_NAME else ref.get("name")
            found = self.router.resolve_name(ROUTED_BY_NAME.get(method, PROMPT), name) if isinstance(name, str) else None
            return found[0].name if found else None
        uri = params.get("uri") if method in ROUTED_BY_URI else ref.get("uri") if method == "completion/complete" else None
        ns = self.router.resolve_uri(uri) if isinstance(uri, str) else None
        return ns.name if ns else None

    async def _dispatch(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncIterator[Event]:
        method = message["method"]
        params = message.get("params") or {}
        target = self._target(method, params)
        if target is not None:
            telemetry.note_route(target)  # A refusal (rate limit, scope) counts under the namespace asked for.
        await self.rate_limit(ctx, target)
        if method == "ping":
            yield Event(result_response(message["id"], {}))
        elif method == "initialize":
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: this session is already initialized")
        elif method == "logging/setLevel":
            # A shared connection's level would be every session's: the gateway keeps the session's
            # level and filters what those backends log; other backends get the request.
            self._set_log_level(record.id, params["level"])
            await self._fan_out(ctx, record, message, [ns for ns in self._readable(ctx) if not _shared(ns)])
            yield Event(result_response(message["id"], {}))
        elif method in LISTS:
            async with aclosing(self._list(ctx, record, message, LISTS[method])) as events:
                async for event in events:
                    yield event
        else:
            ns, upstream_message = await self._route(ctx, record, method, params, message)
            self._authorize(ctx, ns, method)
            async with aclosing(self._forward(ctx, record, ns, upstream_message)) as events:
                async for event in events:
                    yield event

    async def _route(
        self, ctx: RequestContext, record: SessionRecord, method: str, params: dict[str, Any], message: Message
    ) -> tuple[Namespace, Message]:
        """Which namespace serves this request, and the request as that backend must see it."""
        if self.passthrough and self.router.single is not None:
            # Transparent pass-through: nothing to rename, and the backend answers every request
            # itself (its own errors for unknown methods, tools and malformed params included).
            return self.router.single, message
        if method in ROUTED_BY_NAME or (method == "completion/complete" and (params.get("ref") or {}).get("type") == "ref/prompt"):
            kind = ROUTED_BY_NAME.get(method, PROMPT)
            holder, key = (params, "name") if method in ROUTED_BY_NAME else (params.get("ref") or {}, "name")
            exposed = holder.get(key)
            if not isinstance(exposed, str):
                raise GatewayError(ErrorCode.INVALID_PARAMS, f"Invalid params: {method} needs a string '{key}'")
            found = self.router.resolve_name(kind, exposed) or await self._relearn(ctx, record, kind, exposed)
            if found is None:
                raise GatewayError(ErrorCode.INVALID_PARAMS, f"Unknown {kind}: '{exposed}'", data={kind: exposed})
            ns, original = found
            if original == exposed:
                return ns, message
            rewritten = {**holder, key: original}
            new_params = {**params, key: original} if holder is params else {**params, "ref": rewritten}
            return ns, {**message, "params": new_params}
        if method in ROUTED_BY_URI or method == "completion/complete":
            holder = params if method in ROUTED_BY_URI else (params.get("ref") or {})
            uri = holder.get("uri")
            if not isinstance(uri, str):
                raise GatewayError(ErrorCode.INVALID_PARAMS, f"Invalid params: {method} needs a string 'uri'")
            ns = self.router.resolve_uri(uri) or await self._relearn_uri(ctx, record, uri)
            if ns is None:
                raise GatewayError(ErrorCode.INVALID_PARAMS, f"Unknown resource: '{uri}'", data={"uri": uri})
            return ns, message
        raise GatewayError(ErrorCode.METHOD_NOT_FOUND, f"Method not found: '{method}'", data={"method": method})

    def _readable(self, ctx: RequestContext) -> list[Namespace]:
        return [ns for ns in self.namespaces.values() if ctx.principal.can_read(ns.name)]

    @staticmethod
    def _authorize(ctx: RequestContext, ns: Namespace, method: str) -> None:
        """Checked on every call, not only by hiding names from lists: a guessed name is refused."""
        allowed = ctx.principal.can_call(ns.name) if method == "tools/call" else ctx.principal.can_read(ns.name)
        if not allowed:
            telemetry.auth_attempt("scope", "failure")
            what = "call tools in" if ctx.principal.can_read(ns.name) else "use"
            raise GatewayError(
                ErrorCode.FORBIDDEN,
                f"Forbidden: '{ctx.principal.subject}' may not {what} namespace '{ns.name}'",
                data={"namespace": ns.name},
                http_status=403,
            )

    async def _relearn(self, ctx: RequestContext, record: SessionRecord, kind: str, exposed: str) -> tuple[Namespace, str] | None:
        """A replica that has not listed yet learns unprefixed names on demand, only in the
        namespaces the caller may read (what it may not see is not listed on its behalf)."""
        method = "tools/list" if kind == TOOL else "prompts/list"
        readable = [ns for ns in self.router.unprefixed if ctx.principal.can_read(ns.name)]
        await self._learn_all(ctx, record, LISTS[method], readable)
        return self.router.resolve_name(kind, exposed)

    async def _relearn_uri(self, ctx: RequestContext, record: SessionRecord, uri: str) -> Namespace | None:
        namespaces = self._readable(ctx)
        for kind in (LISTS["resources/list"], LISTS["resources/templates/list"]):
            await self._learn_all(ctx, record, kind, namespaces)
        return self.router.resolve_uri(uri)

    async def _learn_all(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, namespaces: list[Namespace]) -> None:
        results = await asyncio.gather(*(self._learn_once(ctx, record, kind, ns) for ns in namespaces), return_exceptions=True)
        for result in results:
            if isinstance(result, GatewayError) and result.code == ErrorCode.CONFIGURATION_ERROR:
                raise result

    async def _learn_once(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, ns: Namespace) -> None:
        """List a namespace to learn what it serves, at most once per RELEARN_SECONDS (unknown names
        and URIs are the caller's to choose: each must not cost a walk of every list); concurrent
        requests share the listing under way."""
        key = (kind.kind, ns.name)
        running = self._learning.get(key)
        if running is None:
            if time.monotonic() - self._learned_at.get(key, -math.inf) < RELEARN_SECONDS:
                return
            self._learned_at[key] = time.monotonic()
            running = self._learning[key] = asyncio.ensure_future(self._learn(ctx, record, kind, ns))
            running.add_done_callback(partial(self._learned, key))
        await asyncio.shield(running)

    def _learned(self, key: tuple[str, str], listing: asyncio.Future[None]) -> None:
        self._learning.pop(key, None)
        if not listing.cancelled():
            listing.exception()  # Retrieved: the waiters got it, none may be left to.

    async def _learn(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, ns: Namespace) -> None:
        cursor: str | None = None
        while True:
            page = await self._fetch_page(ctx, record, ns, kind, cursor)
            expose_items(self.router, kind, ns, page)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def _forget(self, namespace: str, method: str) -> None:
        """The namespace's list changed: drop what was learned of it; it may be relearned at once."""
        for kind in LIST_CHANGED_KIND.get(method, ()):
            self.router.forget(kind, namespace)
            self._learned_at.pop((kind, namespace), None)

    def _set_log_level(self, session_id: str, level: str) -> None:
        self._log_levels.pop(session_id, None)
        self._log_levels[session_id] = level
        while len(self._log_levels) > MAX_LOG_LEVELS:
            del self._log_levels[next(iter(self._log_levels))]

    def _filtered_log(self, record: SessionRecord, ns: Namespace, source: str | None, message: Message) -> bool:
        """A shared-connection backend's log message below the session's `logging/setLevel`."""
        replica = ns.replica(source or "")
        threshold = self._log_levels.get(record.id)
        params = message.get("params")
        level = params.get("level") if isinstance(params, dict) else None
        if replica is None or not replica.shared_session or threshold is None or level not in LOG_LEVELS:
            return False
        return LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold)

    async def _fetch_page(
        self, ctx: RequestContext, record: SessionRecord, ns: Namespace, kind: ListKind, cursor: str | None
    ) -> dict[str, Any]:
        params = {"cursor": cursor} if cursor else {}
        request = {"jsonrpc": "2.0", "id": f"gateway-list-{secrets.token_hex(4)}", "method": kind.method, "params": params}
        response = None
        async for event in self.upstreams.call(record, ns, request, ctx.headers):
            if event.message is not None and is_response(event.message):
                response = event.message
        if response is None:
            raise GatewayError(ErrorCode.BACKEND_UNAVAILABLE, f"Backend for namespace '{ns.name}' did not answer {kind.method}")
        return page_result(response)

    async def _list(self, ctx: RequestContext, record: SessionRecord, message: Message, kind: ListKind) -> AsyncIterator[Event]:
        only = self.router.single
        if only is not None and not ctx.principal.can_read(only.name):
            yield Event(result_response(message["id"], {kind.result_key: []}))
            return
        if only is not None:
            # One namespace: forward verbatim (cursors, _meta and all), renaming only if prefixed.
            async with aclosing(self._forward(ctx, record, only, message)) as events:
                async for event in events:
                    if event.message is not None and is_response(event.message) and isinstance(event.message.get("result"), dict):
                        expose_items(self.router, kind, only, event.message["result"])
                    yield event
            return
        params = message.get("params") or {}

        async def fetch(ns: Namespace, cursor: str | None) -> dict[str, Any]:
            return await self._fetch_page(ctx, record, ns, kind, cursor)

        result = await aggregate(self.router, kind, params, fetch, lambda ns: ctx.principal.can_read(ns.name))
        yield Event(result_response(message["id"], result))

    async def _fan_out(self, ctx: RequestContext, record: SessionRecord, message: Message, namespaces: list[Namespace]) -> None:
        async def one(ns: Namespace) -> None:
            async for _ in self.upstreams.call(record, ns, {**message, "id": f"gateway-{secrets.token_hex(4)}"}, ctx.headers):
                pass

        await asyncio.gather(*(one(ns) for ns in namespaces), return_exceptions=True)

    async def _forward(self, ctx: RequestContext, record: SessionRecord, ns: Namespace, message: Message) -> AsyncIterator[Event]:
        """Call the namespace and relay what comes back, rewriting what crosses the gateway."""
        entry = self._in_flight.get((record.id, message["id"]))
        if entry is not None:
            entry.namespace = ns.name  # Where a cancellation must go.
        async with aclosing(self.upstreams.call(record, ns, message, ctx.headers)) as events:
            async for event in events:
                out = await self._relay(record, ns, event)
                if out is not None:
                    yield out

    async def _relay(self, record: SessionRecord, ns: Namespace, event: Event) -> Event | None:
        event_id = f"{ns.name}:{event.event_id}" if event.event_id is not None else None
        message = event.message
        if message is not None and "method" in message:
            if "id" in message:
                message = await self._server_request(record, ns, event.source, message)
                if message is None:
                    return None
            elif message["method"] == "notifications/message" and self._filtered_log(record, ns, event.source, message):
                return None
            else:
                self._forget(ns.name, message["method"])
        return Event(message, event_id, event.retry)

    async def _server_request(self, record: SessionRecord, ns: Namespace, source: str | None, message: Message) -> Message | None:
        """Relay a server-to-client request: check the client can answer it, give it an id unique
        in this session, and remember where the answer goes (any replica may receive it)."""
        needed = CLIENT_CAPABILITY.get(message["method"])
        if needed is not None and needed not in record.client_capabilities:
            error = GatewayError(ErrorCode.METHOD_NOT_FOUND, f"The client did not declare the '{needed}' capability")
            await self.upstreams.reply(record, ns, source, error_response(message["id"], error))
            return None
        client_id = message["id"] if self.passthrough else f"gw-{secrets.token_hex(8)}"
        route = {"namespace": ns.name, "backend": source, "id": message["id"]}
        await self.store.put_pending(record.id, str(client_id), route, PENDING_TTL_SECONDS)
        return {**message, "id": client_id}

    # -- notifications and responses from the client -------------------------------------------
    async def handle_notification(self, ctx: RequestContext, record: SessionRecord, message: Message) -> None:
        """Forward a client notification. Each spends one request of the caller's rate-limit
        budgets (only `notifications/initialized`, the handshake's end, is free); over a limit it
        is dropped, counted and logged, and the RATE_LIMITED error raised for the transport."""
        method = message["method"]
        if method == "notifications/initialized":
            return
        check_params(message)
        try:
            await self.rate_limit(ctx)
        except GatewayError as error:
            self._drops.note(ctx, method, error)
            raise
        targets = self._readable(ctx)
        if method == "notifications/cancelled":
            entry = self._in_flight.get((record.id, (message.get("params") or {}).get("requestId")))
            if entry is not None and entry.namespace is not None:
                targets = [self.namespaces[entry.namespace]]
        await asyncio.gather(*(self.upstreams.send(record, ns, message, ctx.headers) for ns in targets), return_exceptions=True)

    async def handle_response(self, ctx: RequestContext, record: SessionRecord, message: Message) -> None:
        """The client's answer to a server-to-client request goes back to the backend that asked."""
        route = await self.store.pop_pending(record.id, str(message["id"]))
        ns = self.namespaces.get(route["namespace"]) if route else None
        if route is None or ns is None:
            log.warning("response to an unknown server request dropped", extra={"session_id": record.id})
            return
        await self.upstreams.reply(record, ns, route.get("backend"), {**message, "id": route["id"]})

    # -- standalone stream --------------------------------------------------------------------
    async def listen(self, ctx: RequestContext, record: SessionRecord, last_event_id: str | None) -> AsyncIterator[Event]:
        """Messages for the session outside any request: this replica's hub plus each upstream
        session's own stream, including upstream sessions opened after the stream started; with
        `Last-Event-ID`, a resumption of that one upstream stream. Checks happen here, before the
        stream starts, so they can still be HTTP errors."""
        if not last_event_id:
            return self._standalone(record, ctx.principal.can_read)
        ns_name, _, upstream_id = last_event_id.partition(":")
        ns = self.namespaces.get(ns_name)
        if ns is None or ns.name not in record.upstreams:
            raise GatewayError(ErrorCode.INVALID_PARAMS, "Unknown Last-Event-ID", http_status=400)
        return self._resume(record, ns, upstream_id)

    async def _upstream_events(self, record: SessionRecord, ns: Namespace, resume: str | None) -> AsyncIterator[Event]:
        """One upstream stream, relayed; a message-less, id-less event says it has connected."""
        binding = record.upstreams[ns.name]
        replica = ns.replica(binding.backend)
        if replica is None:
            return
        try:
            async with aclosing(replica.client.listen(binding.session_id, binding.protocol_version, resume)) as events:
                async for event in events:
                    relayed = await self._relay(record, ns, event)
                    if relayed is not None:
                        yield relayed
        except GatewayError as exc:
            log.info("upstream stream ended: %s", exc.message, extra={"namespace": ns.name})

    async def _resume(self, record: SessionRecord, ns: Namespace, upstream_id: str) -> AsyncIterator[Event]:
        async with aclosing(self._upstream_events(record, ns, upstream_id)) as events:
            async for event in events:
                if event.message is not None or event.event_id is not None:
                    yield event

    async def _attach_streams(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        attach = self._followers.get(session_id)
        if attach is not None:
            await attach(namespace, binding)

    async def _standalone(self, record: SessionRecord, can_read: Callable[[str], bool]) -> AsyncIterator[Event]:
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
            nonlocal record
            while True:
                await asyncio.sleep(BINDING_POLL_SECONDS)
                stored = await self.store.get_session(record.id)
                if stored is None:
                    return
                record.upstreams.update(stored.upstreams)
                for name in stored.upstreams:
                    await attach(name)

        self._followers[record.id] = attach
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
            if self._followers.get(record.id) is attach:
                del self._followers[record.id]

    def _deliver_unsolicited(self, namespace: str, owner: str | None, message: Message) -> None:
        """A shared connection's message for no call: to its session, or (broadcasts) to every
        session here whose principal may read the namespace."""
        if message.get("method") in BROADCAST_METHODS:
            self._forget(namespace, message["method"])
        self.hub.publish(owner, message, namespace)


@dataclass
class _InFlight:
    """A request being answered: the namespace it was routed to, once it is."""

    namespace: str | None = None


def _shared(ns: Namespace) -> bool:
    """One upstream connection serves every gateway session (stdio, WebSocket backends)."""
    return any(r.shared_session for r in ns.replicas)


def _internal_error(exc: Exception, message: Message, record: SessionRecord) -> GatewayError:
    """A bug met while handling a request: logged with its traceback, answered with -32603 and the
    request's id, never an HTTP 500 or a WebSocket request left unanswered."""
    log.error("request failed unexpectedly", exc_info=exc, extra={"method": message.get("method"), "session_id": record.id})
    return GatewayError(ErrorCode.INTERNAL_ERROR, "Internal error: the gateway could not handle this request")


class _DropLog:
    """Notifications dropped over a rate limit: each counted, logged at most once a second (a
    flood must not flood the log), with how many were dropped since the last line."""

    def __init__(self) -> None:
        self._since = 0
        self._logged_at = -math.inf

    def note(self, ctx: RequestContext, method: str, error: GatewayError) -> None:
        telemetry.notification_dropped(ctx.protocol, error.kind)
        self._since += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            log.warning(
                "notifications dropped: %s",
                error.message,
                extra={"dropped": self._since, "user": ctx.principal.subject, "method": method[:64], "protocol": ctx.protocol},
            )
            self._since, self._logged_at = 0, now
