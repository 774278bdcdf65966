"""Spans named as docs/telemetry.md names them, and W3C trace context in and out.

Incoming context is taken from the message's `params._meta.traceparent` (any transport; the MCP
semantic conventions' carrier) or else from the HTTP `traceparent` header. Outgoing calls carry
the current span's context both as HTTP headers and in `params._meta` of the upstream message, so
a backend continues the trace whatever its transport. The propagators are the global ones
(`OTEL_PROPAGATORS`, default W3C `tracecontext,baggage`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from app.telemetry.logs import cap
from app.telemetry.state import current_instruments, tracer

# The span names of docs/telemetry.md ("Traces"), and the router's.
HANDLE_REQUEST = "gateway.handleRequest"
BACKEND_CALL = "backend.call"
BACKEND_PROCESS = "backend.process"
AUTH_VALIDATE = "auth.validate"
SESSION_CREATE = "session.create"
REDIS_STORE = "redis.store"
BREAKER_ALLOW = "circuitBreaker.allow"
BREAKER_RECORD = "circuitBreaker.record"
ROUTER_SEND = "router.sendRequest"

#: Keyword arguments of `span()`/`start_span()` renamed to their semantic-convention attribute.
_ALIASES = {"method": "mcp.method.name", "session_id": "mcp.session.id", "tool": "gen_ai.tool.name"}
_CLIENT_SPANS = frozenset({BACKEND_CALL, REDIS_STORE})

T = TypeVar("T")
P = ParamSpec("P")


def span_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as spans carry them: aliases renamed, `user` per the user-label setting, None
    dropped, text capped (a caller's method name or id must not make a megabyte attribute)."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == "user":
            value = current_instruments().user(value)
        if value is not None:
            out[_ALIASES.get(key, key)] = value if isinstance(value, (bool, int, float)) else cap(str(value))
    return out


def start_span(name: str, kind: SpanKind | None = None, **attributes: Any) -> Span:
    """Start a span, child of the current one, without making it current; end it with `.end()`.

    For work that spans `yield`s of an async generator (a backend call relaying a stream), where
    making the span current would leak it into the consumer's code.
    """
    if kind is None:
        kind = SpanKind.CLIENT if name in _CLIENT_SPANS else SpanKind.INTERNAL
    return tracer().start_span(name, kind=kind, attributes=span_attributes(attributes))


class _Current:
    """A span made current for a `with` block: `start_as_current_span` without its two layers of
    generator-based context managers (this runs several times per request)."""

    __slots__ = ("span", "token")

    def __init__(self, target: Span):
        self.span = target

    def __enter__(self) -> Span:
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        otel_context.detach(self.token)
        if error is not None and self.span.is_recording():
            self.span.record_exception(error)
            fail(self.span, error)
        self.span.end()


def span(name: str, kind: SpanKind | None = None, **attributes: Any) -> _Current:
    """A span, current for the block (`with span(...) as s:`); an exception escaping the block
    marks it as an error."""
    return _Current(start_span(name, kind, **attributes))


def fail(target: Span, error: BaseException | str, error_type: str | None = None) -> None:
    """Mark a span as failed (status ERROR, `error.type`)."""
    if isinstance(error, BaseException):
        error_type = error_type or getattr(error, "kind", None) or type(error).__name__
        description = getattr(error, "message", None) or str(error)
    else:
        description = error
    target.set_attribute("error.type", error_type or "error")
    target.set_status(Status(StatusCode.ERROR, str(description)[:200]))


# -- W3C trace context ---------------------------------------------------------------------------
def _meta_of(message: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    params = message.get("params") if message else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else None


def extract(message: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None) -> otel_context.Context:
    """The caller's trace context: `params._meta.traceparent`, else the `traceparent` header; an
    empty context (a new trace) when there is neither, never whatever happens to be current."""
    meta = _meta_of(message)
    if meta is not None and isinstance(meta.get("traceparent"), str):
        return propagate.extract({k: v for k, v in meta.items() if isinstance(v, str)}, context=otel_context.Context())
    if headers and "traceparent" in headers:
        return propagate.extract(headers, context=otel_context.Context())
    return otel_context.Context()


def carry(via: Span | None, message: dict[str, Any], headers: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`message` and `headers` carrying the trace context of `via` (default: the current span):
    W3C `traceparent`/`tracestate`/`baggage` as HTTP headers and in `params._meta`. The inputs are
    not modified; with nothing to carry they are returned as they are."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(via) if via is not None else None)
    if not carrier:
        return message, dict(headers)
    out_headers = {**headers, **carrier}
    if "method" not in message:
        return message, out_headers
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    meta = params.get("_meta")
    meta = meta if isinstance(meta, dict) else {}
    return {**message, "params": {**params, "_meta": {**meta, **carrier}}}, out_headers


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in hex, for log lines; None outside a trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# -- Redis ----------------------------------------------------------------------------------------
def redis_operation(operation: str) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Time a state-store method as `mcp_gateway_redis_operations_duration_seconds{operation}`;
    inside a trace it is also a `redis.store` span (health probes outside any request make no
    trace of their own)."""

    def decorate(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            started = time.perf_counter()
            try:
                if not trace.get_current_span().is_recording():
                    return await method(*args, **kwargs)
                attributes = {"db.system.name": "redis", "db.operation.name": operation}
                with tracer().start_as_current_span(REDIS_STORE, kind=SpanKind.CLIENT, attributes=attributes):
                    return await method(*args, **kwargs)
            finally:
                current_instruments().redis_operation(operation, time.perf_counter() - started)

        return timed

    return decorate
