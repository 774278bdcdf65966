"""Every metric instrument of the gateway, declared once, with the names of docs/telemetry.md.

The names are what Prometheus shows, letter for letter, both on the `:9090` scrape (the OTel
Prometheus reader) and after the Collector (OTLP, then Prometheus remote write): counters are
declared with their `_total` (both translators keep one), histograms in seconds with unit `s`
and a name already ending in `_seconds` (no `_seconds_seconds`), gauges without a unit so no
suffix is added (`x509_cert_expiry`, and `mcp_gateway_connections_total`, which the dashboards and
rules read as a gauge). Nothing else in the code base creates instruments; other processes (the TCP bridge) use
this class through `app.telemetry.setup`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.telemetry.labels import BREAKER_STATES, DEFAULT_USER_LABEL, GATEWAY, UserLabel, UserLabelMode, method_label
from app.telemetry.observed import Certificates, resident_memory_bytes

# -- names (the operations contract's gateway table, then the gateway's own additions) ------------
CONNECTIONS = "mcp_gateway_connections_total"
REQUESTS = "mcp_gateway_requests_total"
REQUEST_DURATION = "mcp_gateway_request_duration_seconds"
BACKEND_HEALTH = "mcp_gateway_backend_health"
CIRCUIT_BREAKER_STATE = "mcp_gateway_circuit_breaker_state"
RATE_LIMIT_REMAINING = "mcp_gateway_rate_limit_remaining"
SESSION_DURATION = "mcp_gateway_session_duration_seconds"
AUTH_ATTEMPTS = "mcp_gateway_auth_attempts_total"
TCP_FRAMES = "mcp_gateway_tcp_frames_total"
REDIS_DURATION = "mcp_gateway_redis_operations_duration_seconds"
PROCESS_RSS = "process_resident_memory_bytes"
CERT_EXPIRY = "x509_cert_expiry"
RATE_LIMIT_FAILOPEN = "mcp_gateway_rate_limit_failopen_total"
NOTIFICATIONS_DROPPED = "mcp_gateway_notifications_dropped_total"
#: OpenTelemetry semantic conventions for MCP (Prometheus: mcp_server_operation_duration_seconds).
MCP_OPERATION_DURATION = "mcp.server.operation.duration"

# -- histogram buckets -----------------------------------------------------------------------------
#: 1 ms to 10 s, finer around the 500 ms latency objective, with an exact 0.5 boundary (the SLO
#: rules select `le="0.5"`).
REQUEST_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Redis round trips: 100 µs to 1 s.
REDIS_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
#: Sessions: a second to a day.
SESSION_BUCKETS: tuple[float, ...] = (
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
)
#: The MCP semantic conventions' advice for mcp.server.operation.duration.
MCP_OPERATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

HealthSource = Callable[[], Iterable[tuple[str, str, bool | None]]]


class Instruments:
    """The instruments, created from one Meter, plus small helpers that apply the label rules.

    Synchronous instruments are used directly (`instruments.requests.add(1, {...})`); gauges the
    gateway can read at collection time (connections, backend health, memory, certificate
    expiry) are observable and read their sources when Prometheus scrapes or the OTLP reader
    collects.
    """

    def __init__(self, meter: Meter, user_label: UserLabelMode = DEFAULT_USER_LABEL):
        self.user = UserLabel(user_label)
        self._lock = threading.Lock()
        self._health_sources: list[HealthSource] = []
        self._health_pushed: dict[tuple[str, str], int] = {}
        self.certificates = Certificates()

        # Opened and closed on every HTTP exchange: counted in a dict and observed at collection,
        # so an exchange costs two dict updates instead of two measurements through every reader.
        self._connections: dict[tuple[str, str], int] = {}
        self.connections = meter.create_observable_up_down_counter(
            CONNECTIONS,
            callbacks=[self._observe_connections],
            unit="{connection}",
            description="Active connections, by protocol (http, websocket, tcp) and state",
        )
        self.requests = meter.create_counter(
            REQUESTS,
            unit="{request}",
            description="Total JSON-RPC requests, by method, status (success, error, client_error), namespace and user",
        )
        self.request_duration = meter.create_histogram(
            REQUEST_DURATION,
            unit="s",
            description="Request latency from arrival to the final response, by method, backend, protocol and namespace",
            explicit_bucket_boundaries_advisory=REQUEST_BUCKETS,
        )
        self.backend_health = meter.create_observable_gauge(
            BACKEND_HEALTH, callbacks=[self._observe_health], description="Backend replica health: 1 healthy, 0 not"
        )
        self.circuit_breaker_state = meter.create_gauge(
            CIRCUIT_BREAKER_STATE, description="Replicas of the namespace whose circuit breaker is in the state (closed, open, half_open)"
        )
        self.rate_limit_remaining = meter.create_gauge(
            RATE_LIMIT_REMAINING, description="Requests the caller may still make in the current rate-limit window"
        )
        self.session_duration = meter.create_histogram(
            SESSION_DURATION,
            unit="s",
            description="Length of MCP sessions that ended (DELETE or WebSocket close)",
            explicit_bucket_boundaries_advisory=SESSION_BUCKETS,
        )
        self.auth_attempts = meter.create_counter(
            AUTH_ATTEMPTS, unit="{attempt}", description="Authentication attempts, by credential type and result"
        )
        self.tcp_frames = meter.create_counter(
            TCP_FRAMES, unit="{frame}", description="MCPB frames on the TCP bridge, by frame type and direction"
        )
        self.redis_duration = meter.create_histogram(
            REDIS_DURATION,
            unit="s",
            description="Latency of the state store's Redis operations, by operation",
            explicit_bucket_boundaries_advisory=REDIS_BUCKETS,
        )
        self.rate_limit_failopen = meter.create_counter(
            RATE_LIMIT_FAILOPEN, unit="{request}", description="Requests let through because the rate limiter's storage was unreachable"
        )
        self.notifications_dropped = meter.create_counter(
            NOTIFICATIONS_DROPPED,
            unit="{notification}",
            description="Client notifications the gateway dropped instead of forwarding, by protocol and reason (rate_limited)",
        )
        self.operation_duration = meter.create_histogram(
            MCP_OPERATION_DURATION,
            unit="s",
            description="MCP request duration as the server sees it (OpenTelemetry MCP semantic conventions)",
            explicit_bucket_boundaries_advisory=MCP_OPERATION_BUCKETS,
        )
        self.process_memory = meter.create_observable_gauge(
            PROCESS_RSS, callbacks=[self._observe_memory], unit="By", description="Resident memory size in bytes"
        )
        self.cert_expiry = meter.create_observable_gauge(
            CERT_EXPIRY, callbacks=[self._observe_certificates], description="Certificate expiry (notAfter) in unix seconds, by subject"
        )

    # -- helpers for the features that record ----------------------------------------------------
    def connection_opened(self, protocol: str, state: str = "active") -> None:
        with self._lock:
            self._connections[(protocol, state)] = self._connections.get((protocol, state), 0) + 1

    def connection_closed(self, protocol: str, state: str = "active") -> None:
        with self._lock:
            self._connections[(protocol, state)] = self._connections.get((protocol, state), 0) - 1

    def tcp_frame(self, frame_type: str, direction: str) -> None:
        self.tcp_frames.add(1, {"type": frame_type, "direction": direction})

    def auth_attempt(self, credential_type: str, result: str) -> None:
        self.auth_attempts.add(1, {"type": credential_type, "result": result})

    def session_ended(self, seconds: float) -> None:
        self.session_duration.record(max(0.0, seconds))

    def redis_operation(self, operation: str, seconds: float) -> None:
        self.redis_duration.record(seconds, {"operation": operation})

    def request_latency(self, seconds: float, method: str, protocol: str, namespace: str = GATEWAY, backend: str = GATEWAY) -> None:
        """`mcp_gateway_request_duration_seconds` alone (the TCP bridge records its own latency)."""
        attributes = {"method": method_label(method), "backend": backend, "protocol": protocol, "namespace": namespace}
        self.request_duration.record(seconds, attributes)

    def rate_limited(self, principal: Any, remaining: int) -> None:
        attributes = {}
        user = self.user(principal)
        if user is not None:
            attributes["user"] = user
        self.rate_limit_remaining.set(remaining, attributes)

    def breaker_states(self, namespace: str, counts: dict[str, int]) -> None:
        """Replicas of `namespace` per breaker state; states not given are set to 0."""
        for state in {*BREAKER_STATES, *counts}:
            self.circuit_breaker_state.set(counts.get(state, 0), {"namespace": namespace, "state": state})

    def set_backend_health(self, namespace: str, backend: str, up: bool) -> None:
        with self._lock:
            self._health_pushed[(namespace, backend)] = 1 if up else 0

    def watch_backends(self, source: HealthSource) -> Callable[[], None]:
        """Observe backend health from `source` (namespace, backend, healthy) at every collection;
        returns the function that stops it."""
        with self._lock:
            self._health_sources.append(source)

        def stop() -> None:
            with self._lock:
                if source in self._health_sources:
                    self._health_sources.remove(source)

        return stop

    def watch_certificates(self, paths: Sequence[str | Path]) -> None:
        self.certificates.watch(paths)

    # -- observable callbacks (run on the collecting thread) --------------------------------------
    def _observe_health(self, options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            values = dict(self._health_pushed)
            sources = list(self._health_sources)
        for source in sources:
            for namespace, backend, healthy in source():
                values[(namespace, backend)] = 1 if healthy else 0
        for (namespace, backend), value in values.items():
            yield Observation(value, {"namespace": namespace, "backend": backend})

    def _observe_connections(self, options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            counts = list(self._connections.items())
        for (protocol, state), value in counts:
            yield Observation(value, {"protocol": protocol, "state": state})

    def _observe_memory(self, options: CallbackOptions) -> Iterator[Observation]:
        yield Observation(resident_memory_bytes())

    def _observe_certificates(self, options: CallbackOptions) -> Iterator[Observation]:
        for subject_name, not_after in self.certificates.expiries():
            yield Observation(not_after, {"subject": subject_name})
