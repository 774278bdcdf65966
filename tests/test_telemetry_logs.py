"""Log lines: JSON with the guide's gateway fields and the trace they belong to, one per completed
request, and never a credential, whatever the client sends (checked in every byte the gateway and
the backend write, and in everything exported by OTLP)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import Backend, GatewayProc, start_backend, start_gateway, wait_until
from tests.support.mcp_http import RawSession
from tests.support.otlp import OtlpReceiver

API_KEY = "sk-test-" + secrets.token_hex(16)
FORGED_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0." + secrets.token_hex(16)
GUIDE_FIELDS = {"timestamp", "level", "service", "session_id", "request_id", "namespace", "backend", "message"}
REQUEST_FIELDS = GUIDE_FIELDS | {"method", "duration_ms", "status", "user", "trace_id", "span_id"}


@dataclass
class Run:
    gateway: GatewayProc
    backend: Backend
    otlp: OtlpReceiver
    session_id: str

    def lines(self) -> list[dict[str, Any]]:
        text = self.gateway.read_log()
        return [json.loads(line) for line in text.splitlines() if line and not line.startswith("$ ")]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("telemetry-logs")
    with OtlpReceiver() as otlp:
        backend = start_backend("web", workdir, "http")
        gateway = start_gateway(
            {
                "auth": {"mode": "api_key", "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "alice"}]},
                "telemetry": {"user_label": "hashed"},
                "namespaces": {"web": {"backends": [{"name": "web-1", "url": backend.url}]}},
            },
            workdir,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"},
        )
        try:
            session = RawSession(gateway.url)
            session.client.headers["authorization"] = f"Bearer {API_KEY}"
            session.initialize()
            assert session.call("tools/call", {"name": "web__echo", "arguments": {"text": "hello"}})["result"]["isError"] is False
            echoed = session.call("tools/call", {"name": "web__headers", "arguments": {}})["result"]["structuredContent"]
            assert "authorization" not in echoed  # the client's credential never travels upstream
            assert "error" in session.call("tools/call", {"name": "nowhere__x", "arguments": {}})
            forged = RawSession(gateway.url)
            assert forged.request("ping", authorization=f"Bearer {FORGED_JWT}").status_code == 401
            assert forged.request("ping", authorization=f"Bearer {API_KEY[::-1]}").status_code == 401
            wait_until(lambda: any(r.body == "request completed" and r.attributes.get("tool") == "nowhere__x" for r in otlp.logs()), timeout=15)
            yield Run(gateway, backend, otlp, session.session_id or "")
        finally:
            gateway.proc.stop()
            backend.proc.stop()


def test_every_line_is_json_with_the_guides_fields(run: Run) -> None:
    lines = run.lines()
    assert lines, "no log lines"
    for line in lines:
        assert {"timestamp", "level", "service", "message"} <= set(line), line
        assert line["service"] == "mcp-gateway"
        assert line["timestamp"].endswith("Z") and line["level"] in {"debug", "info", "warning", "error", "critical"}


def test_one_info_line_per_completed_request_with_its_trace(run: Run) -> None:
    completed = [line for line in run.lines() if line["message"] == "request completed"]
    calls = [line for line in completed if line.get("tool") == "web__echo"]
    assert len(calls) == 1, completed
    [call] = calls
    assert REQUEST_FIELDS <= set(call), set(REQUEST_FIELDS) - set(call)
    assert call["level"] == "info" and call["method"] == "tools/call" and call["status"] == "success"
    assert call["namespace"] == "web" and call["backend"] == "web-1" and call["session_id"] == run.session_id
    assert call["request_id"] == "2" and isinstance(call["duration_ms"], float) and call["duration_ms"] > 0
    assert call["user"] == "u-" + hashlib.sha256(b"alice").hexdigest()[:12]  # telemetry.user_label: hashed
    assert len(call["trace_id"]) == 32 and len(call["span_id"]) == 16
    spans = run.otlp.wait_for(lambda: run.otlp.span_named("gateway.handleRequest", **{"gen_ai.tool.name": "web__echo"}), 15)
    assert (spans[0].trace_id, spans[0].span_id) == (call["trace_id"], call["span_id"])
    failed = [line for line in completed if line.get("tool") == "nowhere__x"]
    assert [(f["status"], f["error_type"], f["error_code"]) for f in failed] == [("error", "invalid_params", -32602)]
    # Refused at the door (401), before the body is read: counted and logged once each, as
    # anonymous callers of an unknown method.
    refused = [line for line in completed if line.get("error_type") == "unauthorized"]
    assert [(r["method"], r["status"], r["user"]) for r in refused] == [("other", "error", "u-" + hashlib.sha256(b"anonymous").hexdigest()[:12])] * 2
    # Every request the gateway answered has exactly one line: initialize, 3 calls, 2 refusals.
    assert len(completed) == 6, [(c["method"], c["status"]) for c in completed]


def test_no_credential_appears_anywhere(run: Run) -> None:
    exported = json.dumps(
        [[s.name, s.attributes] for s in run.otlp.spans()] + [[r.body, r.attributes] for r in run.otlp.logs()] + [[m.name, m.points] for m in run.otlp.metrics()],
        default=str,
    )
    outputs = {"gateway log": run.gateway.read_log(), "backend log": run.backend.proc.read_log(), "OTLP export": exported}
    for secret in (API_KEY, FORGED_JWT, API_KEY[::-1], FORGED_JWT.split(".")[2]):
        for where, text in outputs.items():
            assert secret not in text, f"a credential leaked into the {where}"
    assert "alice" not in outputs["OTLP export"] and '"user": "alice"' not in outputs["gateway log"]
