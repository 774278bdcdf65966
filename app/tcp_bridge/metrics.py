"""The bridge's only door to telemetry: every metric, span and flush of the bridge goes through here.

Instruments are declared once, in the gateway's telemetry module (`app.telemetry`); the bridge
sets that module up for its own process (`setup("mcp-gateway-tcp-bridge", metrics_port=9092)`:
Prometheus scrape endpoint and OTLP from `OTEL_*`) and records with its instruments:

- `mcp_gateway_tcp_frames_total{type, direction}`: every frame in and out;
- `mcp_gateway_connections_total{protocol="tcp", state="active"}`: open MCPB connections;
- `mcp_gateway_request_duration_seconds{protocol="tcp", method, ...}`: from a Request frame's
  arrival to its Response frame, as the TCP client experiences it. The bridge does not count
  `mcp_gateway_requests_total`: the gateway counts each request once, whatever its edge.

Each request gets a `bridge.handleRequest` span, a child of the client's trace (its
`params._meta.traceparent`, if any), whose context travels to the gateway in `params._meta`, so
the gateway's `gateway.handleRequest` continues the same trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from app import telemetry
from app.tcp_bridge.codec import FrameType

SERVICE = "mcp-gateway-tcp-bridge"
PROTOCOL = "tcp"
INBOUND = "inbound"
OUTBOUND = "outbound"
SPAN_NAME = "bridge.handleRequest"
ACTIVE = "active"

_telemetry: telemetry.Telemetry | None = None


def start(metrics_port: int, metrics_host: str = "127.0.0.1") -> telemetry.Telemetry:
    """Set up this process's telemetry. Raises telemetry.TelemetryError (port taken, bad OTEL_*)."""
    global _telemetry
    _telemetry = telemetry.setup(SERVICE, metrics_port=metrics_port, metrics_host=metrics_host)
    return _telemetry


def shutdown() -> None:
    """Flush spans and a final metrics export before the process exits."""
    global _telemetry
    if _telemetry is not None:
        _telemetry.shutdown()
        _telemetry = None


def frame(frame_type: FrameType, direction: str) -> None:
    telemetry.current_instruments().tcp_frame(frame_type.label, direction)


def connection_opened() -> None:
    telemetry.current_instruments().connection_opened(PROTOCOL, ACTIVE)


def connection_closed() -> None:
    telemetry.current_instruments().connection_closed(PROTOCOL, ACTIVE)


@dataclass
class RequestSpan:
    """One client request's time through the bridge: its span and its start."""

    method: str
    span: Span
    started: float = field(default_factory=time.perf_counter)

    def finish(self, response: dict[str, Any] | None, error: str | None = None) -> None:
        """Record the latency and end the span; `response` is the JSON-RPC answer, if one came."""
        telemetry.current_instruments().request_latency(time.perf_counter() - self.started, self.method, PROTOCOL)
        failed = error is not None or response is None or "error" in response
        if failed:
            rpc_error = (response or {}).get("error")
            detail = error or (rpc_error.get("message") if isinstance(rpc_error, dict) else None) or "no response"
            self.span.set_attribute("error.type", str(rpc_error.get("code")) if isinstance(rpc_error, dict) else "bridge")
            self.span.set_status(Status(StatusCode.ERROR, str(detail)[:200]))
        self.span.end()


def start_request(message: dict[str, Any], client_address: str | None) -> tuple[RequestSpan, dict[str, Any] | None]:
    """Open the request's span, child of the client's trace. Returns it and, when there is trace
    context to hand on, the message to send instead (our span in `params._meta`); None means:
    forward the client's bytes unchanged."""
    attributes: dict[str, Any] = {
        "mcp.method.name": telemetry.method_label(message["method"]),
        "network.transport": "tcp",
        "network.protocol.name": "mcpb",
    }
    if client_address:
        attributes["client.address"] = client_address
    params = message.get("params")
    if message["method"] == "tools/call" and isinstance(params, dict) and isinstance(params.get("name"), str):
        attributes["gen_ai.tool.name"] = params["name"]
    if "id" in message:
        attributes["jsonrpc.request.id"] = str(message["id"])
    span = telemetry.tracer().start_span(SPAN_NAME, context=telemetry.extract(message), kind=SpanKind.SERVER, attributes=attributes)
    if not span.is_recording():
        return RequestSpan(message["method"], span), None
    carried, _ = telemetry.carry(span, message, {})
    return RequestSpan(message["method"], span), carried if carried is not message else None
