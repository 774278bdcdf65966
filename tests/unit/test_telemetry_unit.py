"""The telemetry package in-process: names as the Prometheus reader shows them, label rules,
trace-context carriage, one request's span/metrics/log line, set-up and log scrubbing.

The end-to-end proofs (a real gateway scraped, an OTLP receiver, a real Prometheus) are in
test_telemetry_metrics.py, test_telemetry_otlp.py and test_telemetry_logs.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app import telemetry
from app.telemetry import state
from app.telemetry.instruments import REQUEST_BUCKETS, Instruments
from app.telemetry.labels import UserLabel, method_label
from app.telemetry.logs import REDACTED, JsonFormatter, scrub
from app.telemetry.requests import RequestScope, request_refused
from tests.support import LOOPBACK, free_port
from tests.support.certs import self_signed_certificate
from tests.support.inprocess import AsgiSession, text_of

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Recording:
    """Instruments and a tracer installed as the process's, with what they recorded."""

    registry: CollectorRegistry
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    instruments: Instruments

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()

    def families(self) -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(self.exposition())}

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def recording() -> Iterator[Recording]:
    registry = CollectorRegistry(auto_describe=True)
    memory = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry), memory])
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    recorded = Recording(registry, memory, spans, Instruments(meters.get_meter("test"), "raw"))
    state.install(recorded.instruments, tracers.get_tracer("test"))
    try:
        yield recorded
    finally:
        state.install(None, None)
        meters.shutdown()
        tracers.shutdown()


@dataclass
class Ctx:
    protocol: str = "http"
    principal: Any = "alice"
    client_address: str | None = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Event:
    message: dict[str, Any] | None


# -- names, types and labels as Prometheus shows them ------------------------------------------------
def test_every_instrument_shows_the_guides_name_type_and_labels(recording: Recording, tmp_path: Any) -> None:
    ins = recording.instruments
    ins.connection_opened("websocket")
    ins.requests.add(1, {"method": "tools/call", "status": "success", "namespace": "web", "user": "alice"})
    ins.request_latency(0.3, "tools/call", "http", "web", "web-1")
    ins.set_backend_health("web", "web-1", True)
    ins.breaker_states("web", {"closed": 1})
    ins.rate_limited("alice", 5)
    ins.session_ended(12.0)
    ins.auth_attempt("api_key", "success")
    ins.tcp_frame("request", "inbound")
    ins.redis_operation("get_session", 0.0004)
    ins.rate_limit_failopen.add(1)
    ins.operation_duration.record(0.3, {"mcp.method.name": "tools/call", "gen_ai.tool.name": "web__echo"})
    families = recording.families()
    # prometheus_client's parser names a counter family without `_total`; its samples carry it.
    expected = {
        "mcp_gateway_connections_total": ("gauge", {"protocol", "state"}),
        "mcp_gateway_requests": ("counter", {"method", "status", "namespace", "user"}),
        "mcp_gateway_request_duration_seconds": ("histogram", {"method", "backend", "protocol", "namespace"}),
        "mcp_gateway_backend_health": ("gauge", {"namespace", "backend"}),
        "mcp_gateway_circuit_breaker_state": ("gauge", {"namespace", "state"}),
        "mcp_gateway_rate_limit_remaining": ("gauge", {"user"}),
        "mcp_gateway_session_duration_seconds": ("histogram", set()),
        "mcp_gateway_auth_attempts": ("counter", {"type", "result"}),
        "mcp_gateway_tcp_frames": ("counter", {"type", "direction"}),
        "mcp_gateway_redis_operations_duration_seconds": ("histogram", {"operation"}),
        "mcp_gateway_rate_limit_failopen": ("counter", set()),
        "mcp_server_operation_duration_seconds": ("histogram", {"mcp_method_name", "gen_ai_tool_name"}),
        "process_resident_memory_bytes": ("gauge", set()),
    }
    for name, (kind, labels) in expected.items():
        assert name in families, f"{name} missing from:\n{recording.exposition()}"
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    samples = {s.name for f in families.values() for s in f.samples}
    assert {"mcp_gateway_requests_total", "mcp_gateway_auth_attempts_total", "mcp_gateway_tcp_frames_total"} <= samples
    assert "mcp_gateway_request_duration_seconds_bucket" in samples
    assert not any("seconds_seconds" in s or "bytes_bytes" in s or "total_total" in s for s in samples), samples
    assert not any("otel_scope" in label for f in families.values() for s in f.samples for label in s.labels)


def test_request_latency_buckets_run_from_1ms_to_10s_with_an_exact_half_second(recording: Recording) -> None:
    recording.instruments.request_latency(0.2, "ping", "http")
    bounds = [s.labels["le"] for s in recording.families()["mcp_gateway_request_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert bounds[0] == "0.001" and bounds[-2:] == ["10.0", "+Inf"]
    assert "0.5" in bounds
    assert list(REQUEST_BUCKETS) == sorted(REQUEST_BUCKETS)


def test_certificate_expiry_is_a_unitless_gauge_by_subject(recording: Recording, tmp_path: Any) -> None:
    pem, _ = self_signed_certificate(tmp_path, "gateway.example", days=90)
    recording.instruments.watch_certificates([pem, tmp_path / "missing.pem"])
    family = recording.families()["x509_cert_expiry"]
    assert family.type == "gauge"
    [sample] = family.samples
    assert sample.name == "x509_cert_expiry" and sample.labels == {"subject": "CN=gateway.example"}
    assert sample.value > 1.7e9


# -- label rules -----------------------------------------------------------------------------------
def test_user_label_modes() -> None:
    assert UserLabel("raw")("alice") == "alice"
    hashed = UserLabel("hashed")("alice")
    assert hashed.startswith("u-") and len(hashed) == 14 and "alice" not in hashed
    assert UserLabel("hashed")("alice") == hashed != UserLabel("hashed")("bob")
    assert UserLabel("off")("alice") is None

    class Principal:
        subject = "carol"

    assert UserLabel("raw")(Principal()) == "carol"
    with pytest.raises(ValueError):
        UserLabel("plain")  # type: ignore[arg-type]


def test_no_identity_reaches_telemetry_unless_configured() -> None:
    """The default `telemetry.user_label` is `hashed`: the subject (often an e-mail) stays out."""
    from opentelemetry.metrics import NoOpMeter

    from app.config import TelemetryConfig

    assert TelemetryConfig().user_label == "hashed"
    assert Instruments(NoOpMeter("test")).user("alice@example.com") == UserLabel("hashed")("alice@example.com")
    assert state.disabled_instruments().user("alice@example.com") == UserLabel("hashed")("alice@example.com")


def test_method_label_is_bounded() -> None:
    assert method_label("tools/call") == "tools/call"
    assert method_label("x" * 500) == "other"
    assert method_label(None) == "other"


# -- trace context in and out ---------------------------------------------------------------------
def test_carry_puts_the_span_context_in_headers_and_meta_without_touching_the_inputs(recording: Recording) -> None:
    span = telemetry.start_span(telemetry.BACKEND_CALL, namespace="web", backend="web-1")
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "_meta": {"progressToken": 7}}}
    headers = {"mcp-session-id": "s"}
    out, out_headers = telemetry.carry(span, message, headers)
    span.end()
    context = span.get_span_context()
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    assert out_headers["traceparent"].startswith(expected) and out_headers["mcp-session-id"] == "s"
    assert out["params"]["_meta"]["traceparent"] == out_headers["traceparent"]
    assert out["params"]["_meta"]["progressToken"] == 7 and out["params"]["name"] == "echo"
    assert "traceparent" not in message["params"]["_meta"] and headers == {"mcp-session-id": "s"}
    response = {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert telemetry.carry(span, response, {})[0] is response  # Only requests and notifications get _meta.
    assert recording.spans.get_finished_spans()[0].kind == SpanKind.CLIENT


def test_carry_without_a_trace_leaves_the_message_alone() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert telemetry.carry(None, message, {"a": "b"}) == (message, {"a": "b"})


def test_extract_prefers_meta_then_header_and_never_inherits_the_current_context(recording: Recording) -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    from_meta = telemetry.extract({"params": {"_meta": {"traceparent": TRACEPARENT}}}, {"traceparent": other})
    assert trace.get_current_span(from_meta).get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    from_header = telemetry.extract({"params": {"_meta": {"traceparent": 5}}}, {"traceparent": other})
    assert trace.get_current_span(from_header).get_span_context().span_id == 0x2222222222222222
    with telemetry.span("outer"):
        assert not trace.get_current_span(telemetry.extract({"params": {}}, {})).get_span_context().is_valid


# -- one request -----------------------------------------------------------------------------------
async def _events(*messages: dict[str, Any] | None, fail: BaseException | None = None) -> Any:
    for message in messages:
        yield Event(message)
    if fail is not None:
        raise fail


async def _drain(scope: RequestScope, events: Any) -> list[Any]:
    return [event async for event in scope.run(events)]


def test_a_request_gets_a_server_span_child_of_the_callers_context_metrics_and_one_log_line(
    recording: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "web__echo", "_meta": {"traceparent": TRACEPARENT}}}
    scope = RequestScope(Ctx(), request, "sess-1", "2025-11-25")

    async def pipeline() -> Any:
        # The pipeline tells the request's observer the namespace and replica; its backend call's
        # span is a child of the request's span.
        scope.route("web", "web-1")
        telemetry.start_span(telemetry.BACKEND_CALL, namespace="web", backend="web-1", user="alice").end()
        yield Event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
        yield Event({"jsonrpc": "2.0", "id": 7, "result": {"content": [], "isError": True}})

    with caplog.at_level(logging.INFO, logger="mcp_gateway.requests"):
        events = asyncio.run(_drain(scope, pipeline()))
    assert len(events) == 2
    server = next(s for s in recording.spans.get_finished_spans() if s.name == telemetry.HANDLE_REQUEST)
    call = next(s for s in recording.spans.get_finished_spans() if s.name == telemetry.BACKEND_CALL)
    assert server.kind == SpanKind.SERVER
    assert server.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and server.parent.span_id == 0xB7AD6B7169203331
    assert call.parent.span_id == server.context.span_id
    assert call.attributes["user"] == "alice" and call.attributes["namespace"] == "web"
    attributes = dict(server.attributes)
    assert attributes["mcp.method.name"] == "tools/call" and attributes["gen_ai.tool.name"] == "web__echo"
    assert attributes["mcp.session.id"] == "sess-1" and attributes["user"] == "alice" and attributes["namespace"] == "web"
    assert attributes["error.type"] == "tool_error" and server.status.status_code == StatusCode.ERROR
    [count] = recording.points("mcp_gateway_requests_total")
    assert dict(count.attributes) == {"method": "tools/call", "status": "success", "namespace": "web", "user": "alice"}
    [latency] = recording.points("mcp_gateway_request_duration_seconds")
    assert dict(latency.attributes) == {"method": "tools/call", "backend": "web-1", "protocol": "http", "namespace": "web"}
    [semconv] = recording.points("mcp.server.operation.duration")
    assert dict(semconv.attributes) == {"mcp.method.name": "tools/call", "gen_ai.tool.name": "web__echo", "error.type": "tool_error"}
    [line] = [r for r in caplog.records if r.getMessage() == "request completed"]
    assert (line.method, line.status, line.namespace, line.backend, line.session_id, line.request_id, line.user) == (
        "tools/call",
        "success",
        "web",
        "web-1",
        "sess-1",
        "7",
        "alice",
    )
    assert isinstance(line.duration_ms, float)


def test_a_json_rpc_error_counts_as_an_error_and_an_abandoned_request_as_cancelled(recording: Recording) -> None:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32050, "message": "Backend unavailable"}}
    asyncio.run(_drain(RequestScope(Ctx(protocol="websocket"), {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}), _events(error)))

    async def abandon() -> None:
        events = RequestScope(Ctx(), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).run(
            _events({"jsonrpc": "2.0", "method": "notifications/message"})
        )
        await anext(events)
        await events.aclose()

    asyncio.run(abandon())
    statuses = {(p.attributes["method"], p.attributes["status"]) for p in recording.points("mcp_gateway_requests_total")}
    assert statuses == {("tools/call", "error"), ("tools/list", "error")}
    errors = {p.attributes.get("error.type") for p in recording.points("mcp.server.operation.duration")}
    assert errors == {"-32050", "cancelled"}


CALLER_MISTAKES = {
    "parse error": -32700,
    "invalid request": -32600,
    "method not found": -32601,
    "invalid params (unknown tool)": -32602,
    "unauthorized": -32001,
    "forbidden": -32003,
    "unknown session": -32004,
    "rate limited": -32029,
    "resource not found": -32002,
}
SERVICE_FAILURES = {
    "internal error": -32603,
    "backend unavailable": -32050,
    "backend timeout": -32051,
    "configuration error": -32053,
    "state store unavailable": -32054,
    "shutting down": -32060,
    "a backend's own server error": -32000,
    "not a number": "oops",
    "unhashable": ["x"],
}


@pytest.mark.parametrize(
    ("code", "status"),
    [(code, "client_error") for code in CALLER_MISTAKES.values()] + [(code, "error") for code in SERVICE_FAILURES.values()],
    ids=[*CALLER_MISTAKES, *SERVICE_FAILURES],
)
def test_the_status_label_tells_a_callers_mistake_from_a_failure_of_the_service(
    recording: Recording, caplog: pytest.LogCaptureFixture, code: Any, status: str
) -> None:
    """Alerts and the success SLO count `error` only: one caller's typos must not page anyone."""
    caplog.set_level(logging.INFO, logger="mcp_gateway.requests")
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "no"}}
    asyncio.run(_drain(RequestScope(Ctx(), {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}), _events(error)))
    [count] = recording.points("mcp_gateway_requests_total")
    assert count.attributes["status"] == status
    [line] = [r for r in caplog.records if r.getMessage() == "request completed"]
    assert line.status == status and line.error_type  # the log line says which mistake or failure it was


def test_a_refused_caller_is_a_client_error_and_a_tool_that_answered_isError_a_success(recording: Recording) -> None:
    from app.core.jsonrpc import ErrorCode, GatewayError

    request_refused("http", None, GatewayError(ErrorCode.UNAUTHORIZED, "Unauthorized", http_status=401))
    tool_error = {"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": True}}
    asyncio.run(_drain(RequestScope(Ctx(), {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}), _events(tool_error)))
    statuses = sorted((p.attributes["method"], p.attributes["status"]) for p in recording.points("mcp_gateway_requests_total"))
    assert statuses == [("other", "client_error"), ("tools/call", "success")]


def test_a_span_started_for_a_backend_call_does_not_label_the_request(recording: Recording) -> None:
    """Only the request's observer learns where it went (no side channel through the context)."""
    scope = RequestScope(Ctx(), {"jsonrpc": "2.0", "id": 1, "method": "tools/call"})

    async def pipeline() -> Any:
        telemetry.start_span(telemetry.BACKEND_CALL, namespace="web", backend="web-1").end()
        yield Event({"jsonrpc": "2.0", "id": 1, "result": {}})

    asyncio.run(_drain(scope, pipeline()))
    [count] = recording.points("mcp_gateway_requests_total")
    assert count.attributes["namespace"] == "_gateway"


async def test_a_request_the_pipeline_refused_is_counted_once_like_one_the_edge_refused(recording: Recording, two: AsgiSession) -> None:
    refused = await two.request("tools/call", {"name": "alpha__echo", "arguments": "not an object"})  # by the pipeline
    assert refused.json()["error"]["code"] == -32602 and refused.json()["id"] == two.next_id
    unknown = await two.request("tools/list", mcp_session_id="no-such-session")  # by the edge
    assert unknown.status_code == 404
    counts = sorted((p.attributes["method"], p.attributes["status"], p.value) for p in recording.points("mcp_gateway_requests_total"))
    assert counts == [("initialize", "success", 1), ("tools/call", "client_error", 1), ("tools/list", "client_error", 1)]


async def test_a_requests_metrics_carry_the_namespace_and_replica_that_served_it(recording: Recording, two: AsgiSession) -> None:
    assert text_of(await two.tool("beta__echo", text="hi")) == "hi"
    [count] = [p for p in recording.points("mcp_gateway_requests_total") if p.attributes["method"] == "tools/call"]
    assert (count.attributes["namespace"], count.attributes["status"]) == ("beta", "success")
    [latency] = [p for p in recording.points("mcp_gateway_request_duration_seconds") if p.attributes["method"] == "tools/call"]
    assert (latency.attributes["namespace"], latency.attributes["backend"]) == ("beta", "beta-1")


def test_the_edges_refusals_count_requests_only(recording: Recording) -> None:
    from app.core.jsonrpc import ErrorCode, GatewayError

    request_refused("http", {"jsonrpc": "2.0", "id": 3, "method": "tools/call"}, GatewayError(ErrorCode.RATE_LIMITED, "x"))
    request_refused("http", None, GatewayError(ErrorCode.PARSE_ERROR, "Parse error"))  # Unparsed: counted.
    request_refused("http", {"jsonrpc": "2.0", "method": "notifications/x"}, GatewayError(ErrorCode.INVALID_REQUEST, "x"))
    counts = sorted((p.attributes["method"], p.value) for p in recording.points("mcp_gateway_requests_total"))
    assert counts == [("other", 1), ("tools/call", 1)]
    assert (
        next(p for p in recording.points("mcp_gateway_requests_total") if p.attributes["method"] == "other").attributes["user"]
        == "anonymous"
    )


def test_pipeline_context_does_not_leak_into_the_consumer(recording: Recording) -> None:
    async def consume() -> list[bool]:
        seen = []
        async for _ in RequestScope(Ctx(), {"jsonrpc": "2.0", "id": 1, "method": "ping"}).run(
            _events({"jsonrpc": "2.0", "id": 1, "result": {}})
        ):
            seen.append(trace.get_current_span().get_span_context().is_valid)
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return seen

    assert asyncio.run(consume()) == [False, False]


# -- Redis timing ------------------------------------------------------------------------------------
def test_redis_operations_are_timed_and_traced_only_inside_a_trace(recording: Recording) -> None:
    @telemetry.redis_operation("get_session")
    async def get_session() -> str:
        return "ok"

    assert asyncio.run(get_session()) == "ok"  # Outside a trace: metric, no span.
    with telemetry.span(telemetry.SESSION_CREATE):
        assert asyncio.run(get_session()) == "ok"
    [point] = recording.points("mcp_gateway_redis_operations_duration_seconds")
    assert point.count == 2 and dict(point.attributes) == {"operation": "get_session"}
    names = [s.name for s in recording.spans.get_finished_spans()]
    assert names == [telemetry.REDIS_STORE, telemetry.SESSION_CREATE]
    store, create = recording.spans.get_finished_spans()
    assert store.parent.span_id == create.context.span_id and store.attributes["db.operation.name"] == "get_session"


# -- set-up ----------------------------------------------------------------------------------------
def test_setup_serves_metrics_on_the_port_and_refuses_a_taken_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    tel = telemetry.setup("unit", metrics_port=port, metrics_host=LOOPBACK, install=False)
    try:
        tel.instruments.connection_opened("http")
        body = httpx.get(f"http://{LOOPBACK}:{port}/metrics").text
        assert 'mcp_gateway_connections_total{protocol="http",state="active"} 1.0' in body
        assert 'service_name="unit"' in body  # target_info carries the resource
        assert tel.exporters == {"traces": [], "metrics": ["prometheus"], "logs": []}
        with pytest.raises(telemetry.TelemetryError, match="--metrics-port"):
            telemetry.setup("unit", metrics_port=port, metrics_host=LOOPBACK, install=False)
    finally:
        assert tel.shutdown(2.0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=0.5)


def test_sdk_disabled_means_no_endpoint_and_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    port = free_port()
    tel = telemetry.setup("unit", metrics_port=port, metrics_host=LOOPBACK, install=False)
    assert not tel.enabled and tel.metrics_address is None
    with socket.socket() as probe:
        assert probe.connect_ex((LOOPBACK, port)) != 0
    tel.instruments.requests.add(1, {"method": "ping"})  # a no-op, not an error
    assert tel.shutdown()


def test_bad_otel_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
    with pytest.raises(telemetry.TelemetryError, match="OTEL_TRACES_SAMPLER_ARG"):
        telemetry.setup("unit", install=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(telemetry.TelemetryError, match="http/json"):
        telemetry.setup("unit", install=False)


# -- logs ------------------------------------------------------------------------------------------
def test_log_lines_carry_trace_ids_and_never_credentials(recording: Recording) -> None:
    formatter = JsonFormatter()
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
    record = logging.LogRecord("mcp_gateway", logging.WARNING, __file__, 1, "refused Bearer %s", ("sk-live-abc123",), None)
    record.authorization = "Bearer sk-live-abc123"
    record.headers = {"Authorization": "Basic dXNlcjpwYXNz", "accept": "*/*"}
    record.detail = f"token was {token}"
    with telemetry.span("work") as current:
        line = json.loads(formatter.format(record))
    assert line["trace_id"] == f"{current.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{current.get_span_context().span_id:016x}"
    text = json.dumps(line)
    assert "sk-live-abc123" not in text and "dXNlcjpwYXNz" not in text and token not in text
    assert line["authorization"] == REDACTED and line["headers"]["accept"] == "*/*"
    assert scrub("plain text") == "plain text"
    assert "trace_id" not in json.loads(formatter.format(logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)))
    assert otel_context.get_current() == otel_context.get_current()


def test_without_a_trace_exporter_only_sampled_callers_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing would read the gateway's own traces: its roots are not recorded (but still carry
    ids to logs and backends); a caller's sampled trace is, so its backends see it sampled."""
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    tel = telemetry.setup("unit", install=False)
    try:
        assert tel.exporters["traces"] == []
        root = tel.tracer.start_span("gateway.handleRequest")
        assert not root.is_recording() and root.get_span_context().is_valid
        assert not root.get_span_context().trace_flags.sampled
        caller = telemetry.extract({"params": {"_meta": {"traceparent": TRACEPARENT}}}, {})
        child = tel.tracer.start_span("gateway.handleRequest", context=caller)
        assert child.is_recording() and child.get_span_context().trace_flags.sampled
        assert format(child.get_span_context().trace_id, "032x") == TRACEPARENT.split("-")[1]
        child.end()
        root.end()
    finally:
        assert tel.shutdown(2.0)
