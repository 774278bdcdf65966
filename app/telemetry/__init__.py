"""OpenTelemetry for the gateway and its sidecars: metrics, traces and logs, set up in one place.

    from app import telemetry

    tel = telemetry.setup("mcp-gateway", metrics_port=9090)     # once, at process start
    telemetry.current_instruments().requests.add(1, {...})      # every instrument: instruments.py
    with telemetry.span(telemetry.AUTH_VALIDATE, user=...):      # span names: tracing.py
        ...
    tel.shutdown()                                               # flush before exit

Another process (the TCP bridge) calls `setup(service_name, metrics_port=...)` the same way and
records with `current_instruments()` (`tcp_frame`, `connection_opened/closed(protocol="tcp")`,
`request_latency(..., protocol="tcp")`). See docs/telemetry.md for every name.
"""

from __future__ import annotations

from typing import Any

from app.telemetry.asgi import ConnectionMetrics
from app.telemetry.instruments import REQUEST_BUCKETS, Instruments
from app.telemetry.labels import (
    BREAKER_STATES,
    CLIENT_ERROR,
    ERROR,
    GATEWAY,
    SUCCESS,
    UserLabel,
    method_label,
)
from app.telemetry.requests import RequestScope, request_refused
from app.telemetry.setup import Telemetry, TelemetryError, setup
from app.telemetry.state import current_instruments, tracer
from app.telemetry.tracing import (
    AUTH_VALIDATE,
    BACKEND_CALL,
    BACKEND_PROCESS,
    BREAKER_ALLOW,
    BREAKER_RECORD,
    HANDLE_REQUEST,
    REDIS_STORE,
    ROUTER_SEND,
    SESSION_CREATE,
    carry,
    current_trace_ids,
    extract,
    fail,
    redis_operation,
    span,
    start_span,
)


# -- what the guards (auth, rate limits, breakers, health checks) record ---------------------------
def breaker_states(namespace: str, counts: dict[str, int]) -> None:
    """`mcp_gateway_circuit_breaker_state{namespace, state}`: replicas of the namespace per state."""
    current_instruments().breaker_states(namespace, counts)


def backend_health(namespace: str, backend: str, up: bool) -> None:
    """`mcp_gateway_backend_health{namespace, backend}`: 1 healthy, 0 not. (The gateway also
    observes every replica's `healthy` flag at each collection; both report the same truth.)"""
    current_instruments().set_backend_health(namespace, backend, up)


def rate_limit_remaining(user: Any, remaining: int) -> None:
    """`mcp_gateway_rate_limit_remaining{user}` (the user label per `telemetry.user_label`)."""
    current_instruments().rate_limited(user, remaining)


def rate_limit_failopen() -> None:
    """`mcp_gateway_rate_limit_failopen_total`: a request let through because the limiter's storage is down."""
    current_instruments().rate_limit_failopen.add(1)


def notification_dropped(protocol: str, reason: str) -> None:
    """`mcp_gateway_notifications_dropped_total{protocol, reason}`: a client notification not forwarded."""
    current_instruments().notifications_dropped.add(1, {"protocol": protocol, "reason": reason})


def auth_attempt(credential_type: str, result: str) -> None:
    """`mcp_gateway_auth_attempts_total{type, result}`."""
    current_instruments().auth_attempt(credential_type, result)


__all__ = [
    "AUTH_VALIDATE",
    "BACKEND_CALL",
    "BACKEND_PROCESS",
    "BREAKER_ALLOW",
    "BREAKER_RECORD",
    "BREAKER_STATES",
    "CLIENT_ERROR",
    "ERROR",
    "GATEWAY",
    "HANDLE_REQUEST",
    "REDIS_STORE",
    "REQUEST_BUCKETS",
    "ROUTER_SEND",
    "SESSION_CREATE",
    "SUCCESS",
    "ConnectionMetrics",
    "Instruments",
    "RequestScope",
    "Telemetry",
    "TelemetryError",
    "UserLabel",
    "auth_attempt",
    "backend_health",
    "breaker_states",
    "carry",
    "current_instruments",
    "current_trace_ids",
    "extract",
    "fail",
    "method_label",
    "rate_limit_failopen",
    "rate_limit_remaining",
    "redis_operation",
    "request_refused",
    "setup",
    "span",
    "start_span",
    "tracer",
]
