"""Spans, metrics and logs by OTLP, as a Collector receives them (tests/support/otlp.py).

One trace crosses client → gateway → backend: the client's W3C context (HTTP `traceparent` header
or `params._meta.traceparent`) parents `gateway.handleRequest`, the gateway's `backend.call`
parents the backend process's own `backend.process` (the test backend exports its spans to the
same receiver). Metrics arrive under the names of docs/telemetry.md, over gRPC and HTTP/protobuf, and a
SIGTERM flushes everything before the process exits.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.client import connect

from tests.support import (
    Backend,
    GatewayProc,
    RedisServer,
    start_backend,
    start_gateway,
)
from tests.support.mcp_http import RawSession
from tests.support.otlp import OtlpReceiver, Span

SERVER, CLIENT = 2, 3  # SpanKind in OTLP
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300", "OTEL_BLRP_SCHEDULE_DELAY": "100"}


def _client_context() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _traced_backend(name: str, workdir: Path, otlp: OtlpReceiver) -> Backend:
    """A test backend that exports a `backend.process` span per traced HTTP exchange."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVERYTHING_OTLP_ENDPOINT", otlp.grpc_endpoint)
        return start_backend(name, workdir, "http")


def _otlp_env(otlp: OtlpReceiver, protocol: str = "grpc", **extra: str) -> dict[str, str]:
    endpoint = otlp.grpc_endpoint if protocol == "grpc" else otlp.http_endpoint
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol, **FAST_EXPORT, **extra}


@dataclass
class Stack:
    otlp: OtlpReceiver
    gateway: GatewayProc

    def trace(self, trace_id: str, *names: str, timeout: float = 15.0) -> dict[str, Span]:
        """The spans of a trace, by name, once every name has arrived."""

        def arrived() -> dict[str, Span] | None:
            spans = {s.name: s for s in self.otlp.spans() if s.trace_id == trace_id}
            return spans if set(names) <= set(spans) else None

        return self.otlp.wait_for(
            arrived, timeout, f"spans {names} of trace {trace_id}: got {[s.name for s in self.otlp.spans() if s.trace_id == trace_id]}"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("telemetry-otlp")
    if not redis_server.running:
        redis_server.start()
    with OtlpReceiver() as otlp:
        web = _traced_backend("web", workdir, otlp)
        gateway = start_gateway(
            {
                "redis_url": redis_server.url,
                "telemetry": {"user_label": "raw"},
                "namespaces": {"web": {"backends": [{"name": "web-1", "url": web.url}]}},
            },
            workdir,
            env=_otlp_env(otlp),
        )
        try:
            yield Stack(otlp, gateway)
        finally:
            gateway.proc.stop()
            web.proc.stop()


def test_one_trace_from_the_client_header_through_gateway_into_the_backend(stack: Stack) -> None:
    session = RawSession(stack.gateway.url)
    session.initialize()
    trace_id, client_span, traceparent = _client_context()
    response = session.request("tools/call", {"name": "web__echo", "arguments": {"text": "traced"}}, traceparent=traceparent)
    assert response.status_code == 200
    spans = stack.trace(
        trace_id, "gateway.handleRequest", "backend.call", "backend.process", "circuitBreaker.allow", "circuitBreaker.record"
    )
    handle, call, process = spans["gateway.handleRequest"], spans["backend.call"], spans["backend.process"]
    assert handle.parent_span_id == client_span and handle.kind == SERVER and handle.service == "mcp-gateway"
    assert call.parent_span_id == handle.span_id and call.kind == CLIENT
    assert process.parent_span_id == call.span_id and process.service == "backend-web"
    # The circuit-breaker chain (docs/telemetry.md) sits beside the call, in the same request.
    assert spans["circuitBreaker.allow"].parent_span_id == handle.span_id
    assert spans["circuitBreaker.record"].parent_span_id == handle.span_id
    assert handle.attributes["mcp.method.name"] == "tools/call"
    assert handle.attributes["gen_ai.tool.name"] == "web__echo"
    assert handle.attributes["mcp.session.id"] == session.session_id
    assert handle.attributes["namespace"] == "web" and handle.attributes["user"] == "anonymous"
    assert call.attributes["namespace"] == "web" and call.attributes["backend"] == "web-1" and call.attributes["user"] == "anonymous"


def test_the_backend_receives_the_calls_context_as_header_and_in_meta(stack: Stack) -> None:
    session = RawSession(stack.gateway.url)
    session.initialize()
    trace_id, _, traceparent = _client_context()
    headers = session.call("tools/call", {"name": "web__headers", "arguments": {}, "_meta": {"traceparent": traceparent}})["result"][
        "structuredContent"
    ]
    meta = session.call("tools/call", {"name": "web__meta", "arguments": {}, "_meta": {"traceparent": traceparent, "progressToken": "p1"}})[
        "result"
    ]["structuredContent"]

    def calls() -> set[str]:
        spans = {s.span_id for s in stack.otlp.spans() if s.trace_id == trace_id and s.name == "backend.call"}
        return spans if len(spans) == 2 else set()

    call_spans = stack.otlp.wait_for(calls, 15, "both backend.call spans")
    for carried in (headers["traceparent"], meta["traceparent"]):
        _, carried_trace, carried_span, _ = carried.split("-")
        assert carried_trace == trace_id and carried_span in call_spans, (carried, call_spans)
    assert meta["progressToken"] == "p1"  # the rest of _meta passes through


def test_websocket_meta_traceparent_parents_the_request(stack: Stack) -> None:
    trace_id, client_span, traceparent = _client_context()
    with connect(stack.gateway.url.replace("http://", "ws://") + "/ws", subprotocols=["mcp"]) as ws:  # type: ignore[list-item]
        ws.send(
            orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
                }
            ).decode()
        )
        assert "result" in orjson.loads(ws.recv(timeout=10))
        call = {"name": "web__echo", "arguments": {"text": "ws"}, "_meta": {"traceparent": traceparent}}
        ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}).decode())
        assert orjson.loads(ws.recv(timeout=10))["id"] == 2
    spans = stack.trace(trace_id, "gateway.handleRequest", "backend.call", "backend.process")
    assert spans["gateway.handleRequest"].parent_span_id == client_span
    assert spans["gateway.handleRequest"].attributes["network.protocol.name"] == "websocket"
    assert spans["backend.process"].parent_span_id == spans["backend.call"].span_id


def test_initialize_records_session_create_and_redis_store(stack: Stack) -> None:
    trace_id, client_span, traceparent = _client_context()
    session = RawSession(stack.gateway.url)
    response = session.post(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        },
        traceparent=traceparent,
    )
    assert response.status_code == 200
    spans = stack.trace(trace_id, "gateway.handleRequest", "session.create", "redis.store")
    handle, create, store = spans["gateway.handleRequest"], spans["session.create"], spans["redis.store"]
    assert handle.parent_span_id == client_span and handle.attributes["mcp.method.name"] == "initialize"
    assert create.parent_span_id == handle.span_id and create.attributes["mcp.session.id"] == response.headers["mcp-session-id"]
    assert store.parent_span_id == create.span_id and store.kind == CLIENT
    assert store.attributes["db.system.name"] == "redis" and store.attributes["db.operation.name"] == "create_session"


def test_an_error_marks_the_span(stack: Stack) -> None:
    session = RawSession(stack.gateway.url)
    session.initialize()
    trace_id, _, traceparent = _client_context()
    assert "error" in session.call("tools/call", {"name": "nowhere__x", "arguments": {}, "_meta": {"traceparent": traceparent}})
    handle = stack.trace(trace_id, "gateway.handleRequest")["gateway.handleRequest"]
    assert handle.is_error and "error.type" in handle.attributes


def test_metrics_arrive_by_otlp_with_the_guides_names(stack: Stack) -> None:
    wanted = {
        "mcp_gateway_requests_total": ("sum", True),
        "mcp_gateway_connections_total": ("sum", False),
        "mcp_gateway_request_duration_seconds": ("histogram", None),
        "mcp_gateway_redis_operations_duration_seconds": ("histogram", None),
        "mcp_gateway_backend_health": ("gauge", None),
        "process_resident_memory_bytes": ("gauge", None),
        "mcp.server.operation.duration": ("histogram", None),
    }
    stack.otlp.wait_for(lambda: set(wanted) <= stack.otlp.metric_names(), 15, f"metrics {sorted(wanted)}")
    for name, (kind, monotonic) in wanted.items():
        metric = stack.otlp.latest(name)
        assert metric is not None and metric.kind == kind and metric.monotonic == monotonic, (name, metric)
    latency = stack.otlp.latest("mcp_gateway_request_duration_seconds")
    assert latency.unit == "s" and 0.5 in latency.points[0]["bounds"]
    requests = stack.otlp.latest("mcp_gateway_requests_total")
    assert {frozenset(p["attributes"]) for p in requests.points} == {frozenset({"method", "status", "namespace", "user"})}


def test_log_records_arrive_with_their_trace(stack: Stack) -> None:
    session = RawSession(stack.gateway.url)
    session.initialize()
    trace_id, _, traceparent = _client_context()
    session.call("tools/call", {"name": "web__echo", "arguments": {"text": "x"}, "_meta": {"traceparent": traceparent}})

    def completed() -> list[Any]:
        return [r for r in stack.otlp.logs() if r.body == "request completed" and r.trace_id == trace_id]

    [record] = stack.otlp.wait_for(completed, 15, "the request's log record")
    assert record.attributes["method"] == "tools/call" and record.attributes["status"] == "success"
    assert record.attributes["namespace"] == "web" and record.severity_text == "INFO" and record.service == "mcp-gateway"


def test_http_protobuf_export(tmp_path: Path) -> None:
    with OtlpReceiver() as otlp:
        gateway = start_gateway(
            {"namespaces": {"web": {"backends": [{"name": "web-1", "url": "http://127.0.0.1:9/mcp"}]}}},
            tmp_path,
            env=_otlp_env(otlp, "http/protobuf"),
        )
        try:
            RawSession(gateway.url).initialize()
            otlp.wait_for(lambda: otlp.span_named("gateway.handleRequest") and "mcp_gateway_requests_total" in otlp.metric_names(), 15)
            assert otlp.requests("http") > 0 and otlp.requests("grpc") == 0
        finally:
            gateway.proc.stop()


def test_sigterm_flushes_spans_metrics_and_logs_before_exit(tmp_path: Path) -> None:
    """Export intervals far beyond the test: only the shutdown flush can deliver anything."""
    slow = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_BLRP_SCHEDULE_DELAY": "600000"}
    with OtlpReceiver() as otlp:
        env = {**_otlp_env(otlp), **slow}
        gateway = start_gateway(
            {"namespaces": {"web": {"backends": [{"name": "web-1", "url": "http://127.0.0.1:9/mcp"}]}}}, tmp_path, env=env
        )
        trace_id, _, traceparent = _client_context()
        RawSession(gateway.url).post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
            traceparent=traceparent,
        )
        assert not otlp.spans() and not otlp.metrics()
        started = time.monotonic()
        gateway.proc._popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        # uvicorn re-raises the signal it handled once it has shut down: exit by SIGTERM is a clean exit.
        assert gateway.proc._popen.wait(timeout=30) in (0, -signal.SIGTERM)  # type: ignore[union-attr]
        elapsed = time.monotonic() - started
        assert sorted(s.name for s in otlp.spans() if s.trace_id == trace_id) == ["gateway.handleRequest", "session.create"]
        requests = otlp.latest("mcp_gateway_requests_total")
        assert requests is not None and requests.points[0]["attributes"]["method"] == "initialize"
        assert any(r.body == "gateway stopped" for r in otlp.logs())
        assert elapsed < 25, elapsed
        gateway.proc.stop()
