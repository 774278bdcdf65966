"""One JSON-RPC request's telemetry: its `gateway.handleRequest` span, its metrics, its log line.

A `RequestScope` is the request's observer. The pipeline creates one for each request it answers
and hands it explicitly to the steps that learn where the request goes (`route`: the namespace it
asked for, the replica a backend call went to); the request ends in one place, `finish`, once.
The edge counts only what it refuses itself, before or without the pipeline (`request_refused`):
an error raised by the pipeline's request steps was already counted there, and the edge answers it
without counting it again. The scope's span is current only while pipeline code runs (attached
around each step of the pipeline's async generator, detached before each event goes to the
transport), so it never leaks into a transport's own tasks, however the transport consumes the
events. What the caller chose (its id, tool, prompt or resource name, method) is capped
(`app.telemetry.logs.cap`) before it becomes a span attribute, a metric attribute or a log field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.core.events import Event
from app.core.headers import RELAYED_TRANSPORTS
from app.core.jsonrpc import ErrorCode, GatewayError, error_response
from app.telemetry.labels import (
    CLIENT_ERROR,
    ERROR,
    GATEWAY,
    SUCCESS,
    method_label,
)
from app.telemetry.logs import cap
from app.telemetry.state import current_instruments, tracer
from app.telemetry.tracing import HANDLE_REQUEST, extract

log = logging.getLogger("mcp_gateway.requests")


class Caller(Protocol):
    """Who made a request, as telemetry sees it (the pipeline's `RequestContext`)."""

    @property
    def protocol(self) -> str: ...
    @property
    def principal(self) -> object: ...
    @property
    def client_address(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str] | None: ...


def _error_kind(code: Any) -> str:
    """The gateway's name for a JSON-RPC error code (`invalid_params`, `rate_limited`, ...)."""
    known = isinstance(code, int) and code in ErrorCode._value2member_map_
    return ErrorCode(code).name.lower() if known else "upstream_error"


#: MCP's "resource not found" (a resources/read of a URI the server does not have).
_RESOURCE_NOT_FOUND = -32002
#: Error codes that are the caller's doing (the `4xx` of JSON-RPC), whoever answered them (the
#: gateway, or a backend whose error the gateway relays): they count as `client_error`, so one
#: caller's typos neither page anyone nor spend the success SLO's budget. Every other code (internal
#: errors, backend unavailable or timed out, state store down, shutting down, a backend's own
#: server error) is the service's failure: `error`.
CLIENT_ERROR_CODES = frozenset(
    {
        ErrorCode.PARSE_ERROR,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.METHOD_NOT_FOUND,
        ErrorCode.INVALID_PARAMS,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.FORBIDDEN,
        ErrorCode.SESSION_NOT_FOUND,
        ErrorCode.RATE_LIMITED,
        _RESOURCE_NOT_FOUND,
    }
)


def error_status(code: Any) -> str:
    """The `status` label of a request answered with JSON-RPC error `code`: `client_error` or `error`."""
    return CLIENT_ERROR if isinstance(code, int) and code in CLIENT_ERROR_CODES else ERROR


class RequestScope:
    """Telemetry of one request, from its arrival to its final response."""

    __slots__ = (
        "backend",
        "context",
        "finished",
        "method",
        "namespace",
        "protocol",
        "request_id",
        "session_id",
        "span",
        "started",
        "tool",
        "user",
    )

    def __init__(
        self,
        ctx: Caller,
        message: dict[str, Any] | None,
        session_id: str | None = None,
        protocol_version: str | None = None,
        started: float | None = None,
    ):
        message = message or {}
        self.started = time.perf_counter() if started is None else started
        self.method = message.get("method")
        self.protocol = ctx.protocol
        self.user = current_instruments().user(ctx.principal)
        self.session_id = session_id
        self.request_id = message.get("id")
        raw_params = message.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        name = params.get("name")
        self.tool = cap(name) if self.method == "tools/call" and isinstance(name, str) else None
        self.namespace: str | None = None
        self.backend: str | None = None
        self.finished = False
        attributes: dict[str, Any] = {
            "mcp.method.name": method_label(self.method),
            "network.protocol.name": self.protocol,
        }
        if self.request_id is not None:
            attributes["jsonrpc.request.id"] = cap(str(self.request_id))
        if self.user is not None:
            attributes["user"] = self.user
        if session_id:
            attributes["mcp.session.id"] = cap(session_id)
        if protocol_version:
            attributes["mcp.protocol.version"] = cap(protocol_version)
        if self.tool is not None:
            attributes["gen_ai.tool.name"] = self.tool
            attributes["gen_ai.operation.name"] = "execute_tool"
        elif self.method == "prompts/get" and isinstance(name, str):
            attributes["gen_ai.prompt.name"] = cap(name)
        elif isinstance(params.get("uri"), str):
            attributes["mcp.resource.uri"] = cap(params["uri"])
        if ctx.client_address:
            attributes["client.address"] = cap(ctx.client_address)
        parent = extract(message, ctx.headers)
        start_time = None if started is None else time.time_ns() - int((time.perf_counter() - started) * 1e9)
        self.span = tracer().start_span(HANDLE_REQUEST, context=parent, kind=SpanKind.SERVER, attributes=attributes, start_time=start_time)
        self.context = trace.set_span_in_context(self.span, parent)

    # -- while the request runs ------------------------------------------------------------------
    @contextmanager
    def active(self) -> Iterator[RequestScope]:
        """Make this request's span current for the block."""
        token = otel_context.attach(self.context)
        try:
            yield self
        finally:
            otel_context.detach(token)

    def route(self, namespace: str, backend: str | None = None) -> None:
        """The namespace (and replica) serving the request: its metrics' and span's labels.
        Several different ones (a list merged across namespaces) are labelled `_gateway`."""
        self.namespace = namespace if self.namespace in (None, namespace) else GATEWAY
        if backend is not None:
            self.backend = backend if self.backend in (None, backend) else GATEWAY

    def set_session(self, session_id: str) -> None:
        self.session_id = session_id
        self.span.set_attribute("mcp.session.id", cap(session_id))

    def _is_final(self, message: dict[str, Any] | None) -> bool:
        return (
            message is not None
            and "method" not in message
            and message.get("id") == self.request_id
            and ("result" in message or "error" in message)
        )

    async def run(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        """Relay the pipeline's events, with this scope current while the
        pipeline works, and finish when the response to the request passes (or when the pipeline
        raises: the error is recorded and propagates, for the edge to answer)."""
        try:
            while True:
                token = otel_context.attach(self.context)
                try:
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        self.finish(None, "incomplete")
                        return
                    except Exception as error:  # A refusal the transport turns into its own answer.
                        self.fail(error)
                        raise
                    if not self.finished and self._is_final(event.message):
                        self.finish(event.message)
                finally:
                    otel_context.detach(token)
                yield event
        finally:
            if not self.finished:
                with self.active():
                    self.finish(None, "cancelled")
            await events.aclose()

    # -- the end ---------------------------------------------------------------------------------
    def fail(self, error: BaseException) -> None:
        """The request failed with `error` (which propagates to the edge, to be answered there)."""
        if isinstance(error, GatewayError):
            self.finish(error_response(self.request_id, error))
        else:
            self.finish(None, type(error).__name__)

    def finish(self, response: dict[str, Any] | None, error_type: str | None = None) -> None:
        """The one place a request ends: its metrics, its span's outcome, its log line (once)."""
        if self.finished:
            return
        self.finished = True
        seconds = time.perf_counter() - self.started
        outcome = _outcome(response, error_type)
        namespace = self.namespace or GATEWAY
        backend = self.backend or GATEWAY
        self._count(outcome, seconds, namespace, backend)
        self._mark_span(outcome, namespace, backend)
        self._log(outcome, seconds, namespace, backend)
        self.span.end()

    def _count(self, outcome: _Outcome, seconds: float, namespace: str, backend: str) -> None:
        """`mcp_gateway_requests_total`, `mcp_gateway_request_duration_seconds`, `mcp.server.operation.duration`."""
        ins = current_instruments()
        method = method_label(self.method)
        labels = {"method": method, "status": outcome.status, "namespace": namespace}
        if self.user is not None:
            labels["user"] = self.user
        ins.requests.add(1, labels)
        if self.protocol not in RELAYED_TRANSPORTS:
            # A relayed request's latency is recorded by its relay (the TCP bridge), end to end as
            # its client sees it; recording it here too would count it twice.
            ins.request_duration.record(seconds, {"method": method, "backend": backend, "protocol": self.protocol, "namespace": namespace})
        semconv = {"mcp.method.name": method}
        if self.tool is not None:
            semconv["gen_ai.tool.name"] = self.tool
        if outcome.semconv_error is not None:
            semconv["error.type"] = outcome.semconv_error
        ins.operation_duration.record(seconds, semconv)

    def _mark_span(self, outcome: _Outcome, namespace: str, backend: str) -> None:
        attributes: dict[str, Any] = {"namespace": namespace, "backend": backend}
        if outcome.semconv_error is not None:
            attributes["error.type"] = outcome.semconv_error
            if outcome.code is not None:
                attributes["rpc.response.status_code"] = str(outcome.code)
            message = (outcome.error or {}).get("message") if isinstance(outcome.error, dict) else outcome.semconv_error
            self.span.set_status(Status(StatusCode.ERROR, str(message)[:200]))
        self.span.set_attributes(attributes)

    def _log(self, outcome: _Outcome, seconds: float, namespace: str, backend: str) -> None:
        """The `request completed` line, written while the span is still current (so it carries
        the trace and span ids)."""
        fields: dict[str, Any] = {
            "method": cap(self.method) if isinstance(self.method, str) else method_label(self.method),
            "duration_ms": round(seconds * 1000, 3),
            "status": outcome.status,
            "namespace": namespace,
            "backend": backend,
            "protocol": self.protocol,
            "session_id": self.session_id,
            "request_id": None if self.request_id is None else cap(str(self.request_id)),
        }
        if self.user is not None:
            fields["user"] = self.user
        if self.tool is not None:
            fields["tool"] = self.tool
        if outcome.status != SUCCESS:
            fields["error_type"] = outcome.error_type
            if outcome.code is not None:
                fields["error_code"] = outcome.code
                fields["error"] = str((outcome.error or {}).get("message", ""))[:200]
        elif outcome.semconv_error is not None:
            fields["error_type"] = outcome.semconv_error
        token = otel_context.attach(self.context)
        try:
            log.info("request completed", extra=fields)
        finally:
            otel_context.detach(token)


@dataclass(frozen=True)
class _Outcome:
    """How a request ended: its `status` label, the log's `error_type`, the semantic conventions'
    `error.type` (also set for a tool's own error), and the JSON-RPC error, if any, with its code."""

    status: str
    error_type: str | None
    semconv_error: str | None
    code: Any
    error: Any


def _outcome(response: dict[str, Any] | None, error_type: str | None) -> _Outcome:
    """`response` None: no answer reached the client (`error_type` says why, else `incomplete`)."""
    if response is None:
        kind = error_type or "incomplete"
        return _Outcome(ERROR, kind, kind, None, None)
    error = response.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        return _Outcome(error_status(code), _error_kind(code), str(code) if code is not None else "error", code, error)
    result = response.get("result")
    tool_error = "tool_error" if isinstance(result, dict) and result.get("isError") is True else None
    return _Outcome(SUCCESS, error_type, tool_error, None, None)


def request_refused(
    protocol: str, message: dict[str, Any] | None, error: BaseException, started: float | None = None, ctx: Caller | None = None
) -> None:
    """The edge refused a request before (or without) the pipeline answering it: a malformed or
    unacceptable message, an unknown session, a missing credential. Counted once; notifications
    and responses are not requests and are not counted. `ctx` is the request context when the
    edge got as far as building one (else the caller is counted as `anonymous`). Not for an error
    the pipeline's request steps raised: those requests were counted by their own scope."""
    if message is not None and not ("method" in message and "id" in message):
        return
    scope = RequestScope(ctx if ctx is not None else _EdgeContext(protocol), message, started=started)
    scope.fail(error)


@dataclass(frozen=True)
class _EdgeContext:
    """What is known of a caller refused before authentication."""

    protocol: str
    principal: object = "anonymous"
    client_address: str | None = None
    headers: Mapping[str, str] | None = None
