"""The metrics Prometheus shows for our jobs: the contract dashboards and rules are written against.

The gateway table of the monitoring guide, letter for letter, with the labels the project
added (`user` on requests, `protocol`/`namespace` on latency); the router table of docs/telemetry.md;
and the few metrics of other exporters the alerts use (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter | gauge | histogram
    labels: frozenset[str]
    # Known values of some labels; a matcher `label="x"` must use one of them.
    values: dict[str, frozenset[str]] = field(default_factory=dict)


def _m(name: str, type_: str, labels: str = "", **values: str) -> Metric:
    return Metric(
        name,
        type_,
        frozenset(labels.split()),
        {label: frozenset(v.split()) for label, v in values.items()},
    )


_ALL = [
    # Gateway (:9090, job mcp-gateway; the TCP bridge on :9092, job mcp-bridge).
    _m("mcp_gateway_connections_total", "gauge", "protocol state", protocol="http websocket tcp"),
    _m("mcp_gateway_requests_total", "counter", "method status namespace user", status="success error client_error"),
    _m(
        "mcp_gateway_request_duration_seconds",
        "histogram",
        "method backend protocol namespace",
        protocol="http websocket tcp",
    ),
    _m("mcp_gateway_backend_health", "gauge", "namespace backend"),
    _m("mcp_gateway_circuit_breaker_state", "gauge", "namespace state"),
    _m("mcp_gateway_rate_limit_remaining", "gauge", "user"),
    _m("mcp_gateway_session_duration_seconds", "histogram"),
    _m("mcp_gateway_auth_attempts_total", "counter", "type result"),
    _m("mcp_gateway_tcp_frames_total", "counter", "type direction"),
    _m("mcp_gateway_redis_operations_duration_seconds", "histogram", "operation"),
    # Router (:9091, job mcp-router). Pool states as the contract's expressions use them.
    _m("mcp_router_requests_total", "counter", "method status", status="success error"),
    _m("mcp_router_request_duration_seconds", "histogram", "method status"),
    _m("mcp_router_response_size_bytes", "histogram", "method"),
    _m("mcp_router_active_connections", "gauge", "protocol"),
    _m("mcp_router_connection_errors_total", "counter", "error_type"),
    _m("mcp_router_connection_retries_total", "counter"),
    _m("mcp_router_auth_failures_total", "counter", "reason"),
    _m("mcp_router_rate_limit_exceeded_total", "counter"),
    _m("mcp_router_pool_connections", "gauge", "state", state="active idle total"),
    _m("mcp_router_secure_storage_operations_total", "counter", "operation result"),
    # Every job; Prometheus itself; the Redis exporter; the gateway's certificates.
    _m("process_resident_memory_bytes", "gauge"),
    _m("up", "gauge"),
    _m("redis_up", "gauge"),
    _m("x509_cert_expiry", "gauge", "subject"),
]

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}

# Labels every scraped series carries (job, instance) or gets from the region's
# Prometheus external labels / the regional Collector (region).
TARGET_LABELS = frozenset({"job", "instance", "region"})

JOBS = frozenset({"mcp-gateway", "mcp-bridge", "mcp-router", "redis"})


def series_names() -> dict[str, tuple[Metric, frozenset[str]]]:
    """Every series name Prometheus shows, with its metric and the labels it carries.

    Histograms appear as `<name>_bucket` (with `le`), `<name>_sum` and `<name>_count`.
    """
    out: dict[str, tuple[Metric, frozenset[str]]] = {}
    for metric in _ALL:
        labels = metric.labels | TARGET_LABELS
        if metric.type == "histogram":
            out[f"{metric.name}_bucket"] = (metric, labels | {"le"})
            out[f"{metric.name}_sum"] = (metric, labels)
            out[f"{metric.name}_count"] = (metric, labels)
        else:
            out[metric.name] = (metric, labels)
    return out
