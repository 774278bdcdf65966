"""`backend.process` spans for the test backend: with `EVERYTHING_OTLP_ENDPOINT` set (an OTLP/gRPC
receiver, e.g. `http://127.0.0.1:4317`), every Streamable HTTP exchange that carries a W3C
`traceparent` header becomes a `backend.process` server span, child of that context, exported at
once. Tests use it to see one trace cross the gateway into a real backend process."""

from __future__ import annotations

import os
from typing import Any

from mcp.server.fastmcp import FastMCP

ENDPOINT_VARIABLE = "EVERYTHING_OTLP_ENDPOINT"


def trace_http_exchanges(server: FastMCP) -> None:
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return
    from opentelemetry import propagate
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    provider = TracerProvider(resource=Resource.create({"service.name": f"backend-{server.name}"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("tests.servers.everything")
    build_app = server.streamable_http_app

    def traced_app() -> Any:
        app = build_app()

        async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if scope["type"] != "http" or "traceparent" not in headers:
                await app(scope, receive, send)
                return
            attributes = {"http.request.method": scope["method"], "mcp.session.id": headers.get("mcp-session-id", "")}
            with tracer.start_as_current_span(
                "backend.process", context=propagate.extract(headers), kind=SpanKind.SERVER, attributes=attributes
            ):
                await app(scope, receive, send)

        return traced

    server.streamable_http_app = traced_app  # type: ignore[method-assign]
