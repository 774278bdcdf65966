"""The pipeline's entry, what the edges call: a request is checked (params, duplicate id, rate
limit, scope), then answered by the gateway itself (ping, logging/setLevel, lists) or routed to
its namespace and relayed; notifications and the client's answers to server requests are passed
on. Transports hand it decoded JSON-RPC messages with a `RequestContext` and get back `Event`s to
write (a single response, or a stream ending with the response); it knows nothing of HTTP or
WebSocket framing."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from app import telemetry
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message, error_response, is_response, result_response
from app.core.protocol import check_params
from app.pipeline.aggregate import LISTS
from app.pipeline.catalogue import Catalogue
from app.pipeline.context import RequestContext
from app.pipeline.in_flight import InFlight
from app.pipeline.ratelimit import RateLimiter
from app.pipeline.relay import Relay, shared
from app.pipeline.routing import Namespace
from app.pipeline.sessions import Sessions
from app.pipeline.streams import Streams
from app.pipeline.targets import Targets
from app.pipeline.upstreams import Upstreams
from app.state import SessionRecord, StateStore

log = logging.getLogger("mcp_gateway")


class Pipeline:
    def __init__(
        self,
        *,
        store: StateStore,
        namespaces: dict[str, Namespace],
        limiter: RateLimiter,
        upstreams: Upstreams,
        in_flight: InFlight,
        targets: Targets,
        catalogue: Catalogue,
        relay: Relay,
        sessions: Sessions,
        streams: Streams,
    ):
        self.store = store
        self.namespaces = namespaces
        self.limiter = limiter
        self.upstreams = upstreams
        self.in_flight = in_flight
        self.targets = targets
        self.catalogue = catalogue
        self.relay = relay
        self.sessions = sessions
        self.streams = streams
        self._drops = _DropLog()
        # The sessions' steps, as the edges call them.
        self.initialize = sessions.initialize
        self.session = sessions.session
        self.keep_alive = sessions.keep_alive
        self.end_session = sessions.end
        self.listen = streams.listen

    async def rate_limit(self, ctx: RequestContext, namespace: str | None = None) -> None:
        """The rate-limit step: spend one request of the caller's budgets, or raise RATE_LIMITED."""
        await self.limiter.check(ctx.principal, ctx.client_address, namespace)

    # -- requests -----------------------------------------------------------------------------
    def handle_request(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncGenerator[Event, None]:
        """`_handle_request` observed: its span is current while it works, and the request is
        counted and logged once when its response passes (see app.telemetry.requests)."""
        scope = telemetry.RequestScope(ctx, message, record.id, record.protocol_version)
        return scope.run(self._handle_request(ctx.observed_by(scope), record, message))

    async def _handle_request(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncGenerator[Event, None]:
        """Everything to send back for one request, the response last. A failure before anything
        was sent raises GatewayError (so HTTP can answer with its status code); a failure after
        that ends the stream with a JSON-RPC error response. A request reusing the id of one still
        in flight in the session is refused: its answer could not be told from the other's."""
        request_id = message["id"]
        entry = self.in_flight.begin(record.id, request_id)
        started = False
        try:
            check_params(message)
            async with aclosing(self._dispatch(ctx, record, message)) as events:
                async for event in events:
                    started = True
                    if event.message is not None and is_response(event.message) and event.message.get("id") == request_id:
                        self.in_flight.release(record.id, request_id, entry)  # The client may reuse the id once it has the answer.
                    yield event
        except Exception as exc:
            self.in_flight.release(record.id, request_id, entry)
            error = exc if isinstance(exc, GatewayError) else _internal_error(exc, message, record)
            log.warning("request failed: %s", error.message, extra={"method": message.get("method"), "session_id": record.id})
            if not started:
                raise error from None
            yield Event(error_response(message.get("id"), error))
        finally:
            self.in_flight.release(record.id, request_id, entry)

    async def _dispatch(self, ctx: RequestContext, record: SessionRecord, message: Message) -> AsyncGenerator[Event, None]:
        method = message["method"]
        params = message.get("params") or {}
        target = self.targets.known(method, params)
        if target is not None:
            ctx.observer.route(target)  # A refusal (rate limit, scope) counts under the namespace asked for.
        await self.rate_limit(ctx, target)
        if method == "ping":
            yield Event(result_response(message["id"], {}))
        elif method == "initialize":
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: this session is already initialized")
        elif method == "logging/setLevel":
            # A shared connection's level would be every session's: the gateway keeps the session's
            # level and filters what those backends log; other backends get the request.
            self.relay.set_log_level(record.id, params["level"])
            await self.relay.fan_out(ctx, record, message, [ns for ns in self.catalogue.readable(ctx) if not shared(ns)])
            yield Event(result_response(message["id"], {}))
        elif method in LISTS:
            async with aclosing(self.catalogue.listing(ctx, record, message, LISTS[method], self.relay.forward)) as events:
                async for event in events:
                    yield event
        else:
            ns, upstream_message = await self.targets.resolve(ctx, record, method, params, message)
            _authorize(ctx, ns, method)
            async with aclosing(self.relay.forward(ctx, record, ns, upstream_message)) as events:
                async for event in events:
                    yield event

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
        targets = self.catalogue.readable(ctx)
        if method == "notifications/cancelled":
            entry = self.in_flight.get(record.id, (message.get("params") or {}).get("requestId"))
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
