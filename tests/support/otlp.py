"""An OTLP receiver for tests: what an OpenTelemetry Collector would receive, kept in memory.

No Collector binary is available here, so this is one built on the OTLP protobuf definitions
(`opentelemetry-proto`) and `grpcio`: the gRPC trace, metrics and logs services on a free
loopback port, plus the OTLP/HTTP endpoints (`/v1/traces`, `/v1/metrics`, `/v1/logs`, binary
protobuf) on another, so exporters of either protocol can be pointed at it.

    with OtlpReceiver() as otlp:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        ...
        otlp.wait_for(lambda: otlp.span_named("gateway.handleRequest"))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.logs.v1 import (
    logs_service_pb2,
    logs_service_pb2_grpc,
)
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .net import LOOPBACK, wait_until

T = TypeVar("T")


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    service: str

    @property
    def is_error(self) -> bool:
        return self.status_code == 2  # STATUS_CODE_ERROR


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    kind: str  # sum | gauge | histogram | exponential_histogram | summary
    monotonic: bool | None
    points: list[dict[str, Any]]
    service: str


@dataclass(frozen=True)
class LogRecord:
    body: Any
    severity_text: str
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    service: str


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    spans: list[Span] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=lambda: {"grpc": 0, "http": 0})

    def add_traces(self, request: trace_service_pb2.ExportTraceServiceRequest, via: str) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        Span(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.kind,
                            attributes(s.attributes),
                            s.status.code,
                            service,
                        )
                    )
        with self.lock:
            self.spans.extend(spans)
            self.requests[via] += 1

    def add_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest, via: str) -> None:
        metrics = []
        for resource_metrics in request.resource_metrics:
            service = attributes(resource_metrics.resource.attributes).get("service.name", "")
            for scope_metrics in resource_metrics.scope_metrics:
                for m in scope_metrics.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    points = []
                    for p in data.data_points:
                        point: dict[str, Any] = {"attributes": attributes(p.attributes)}
                        if kind in ("sum", "gauge"):
                            point["value"] = getattr(p, p.WhichOneof("value"))
                        elif kind == "histogram":
                            point.update(count=p.count, sum=p.sum, bounds=list(p.explicit_bounds), buckets=list(p.bucket_counts))
                        points.append(point)
                    monotonic = data.is_monotonic if kind == "sum" else None
                    metrics.append(Metric(m.name, m.unit, kind, monotonic, points, service))
        with self.lock:
            self.metrics.extend(metrics)
            self.requests[via] += 1

    def add_logs(self, request: logs_service_pb2.ExportLogsServiceRequest, via: str) -> None:
        records = []
        for resource_logs in request.resource_logs:
            service = attributes(resource_logs.resource.attributes).get("service.name", "")
            for scope_logs in resource_logs.scope_logs:
                for r in scope_logs.log_records:
                    records.append(
                        LogRecord(any_value(r.body), r.severity_text, attributes(r.attributes), r.trace_id.hex(), r.span_id.hex(), service)
                    )
        with self.lock:
            self.logs.extend(records)
            self.requests[via] += 1


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: _Store):
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add_traces(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: _Store):
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add_metrics(request, "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: _Store):
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add_logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


_HTTP_PATHS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse, "add_traces"),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse, "add_metrics"),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse, "add_logs"),
}


def _http_handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            kinds = _HTTP_PATHS.get(self.path)
            if kinds is None or self.headers.get("content-type") != "application/x-protobuf":
                self.send_error(404 if kinds is None else 415)
                return
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                import gzip

                body = gzip.decompress(body)
            request_type, response_type, add = kinds
            getattr(store, add)(request_type.FromString(body), "http")
            payload = response_type().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class OtlpReceiver:
    """OTLP over gRPC (`grpc_endpoint`) and HTTP/protobuf (`http_endpoint`) on loopback."""

    def __init__(self) -> None:
        self._store = _Store()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self._store), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self._store), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self._store), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{LOOPBACK}:0")
        self._http = ThreadingHTTPServer((LOOPBACK, 0), _http_handler(self._store))
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def start(self) -> OtlpReceiver:
        self._grpc.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived ------------------------------------------------------------------------
    def spans(self) -> list[Span]:
        with self._store.lock:
            return list(self._store.spans)

    def metrics(self) -> list[Metric]:
        with self._store.lock:
            return list(self._store.metrics)

    def logs(self) -> list[LogRecord]:
        with self._store.lock:
            return list(self._store.logs)

    def requests(self, via: str) -> int:
        """How many export requests arrived over `grpc` or `http`."""
        with self._store.lock:
            return self._store.requests[via]

    def span_named(self, name: str, **attrs: Any) -> list[Span]:
        return [s for s in self.spans() if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())]

    def metric_names(self) -> set[str]:
        return {m.name for m in self.metrics()}

    def latest(self, name: str) -> Metric | None:
        """The last export of metric `name` (cumulative: it holds everything so far)."""
        found = [m for m in self.metrics() if m.name == name]
        return found[-1] if found else None

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, message: str = "") -> T:
        return wait_until(predicate, timeout=timeout, interval=0.05, message=message or "OTLP data did not arrive")
