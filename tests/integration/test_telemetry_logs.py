"""Log lines: JSON with the fields of docs/telemetry.md and the trace they belong to, one per completed
request, and never a credential, whatever the client sends (checked in every byte the gateway and
the backend write, and in everything exported by OTLP). The Elasticsearch queries of docs/operations.md, as
docs/operations.md gives them, find what they look for in these lines."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import Backend, GatewayProc, start_backend, start_gateway, wait_until
from tests.support.elasticsearch import search
from tests.support.mcp_http import RawSession
from tests.support.otlp import OtlpReceiver
from tests.support.paths import REPO_ROOT

API_KEY = "sk-test-" + secrets.token_hex(16)
FORGED_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0." + secrets.token_hex(16)
GUIDE_FIELDS = {"timestamp", "level", "service", "session_id", "request_id", "namespace", "backend", "message"}
REQUEST_FIELDS = GUIDE_FIELDS | {"method", "duration_ms", "status", "user", "trace_id", "span_id"}
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
SLOW_SECONDS = 1.0  # the slow-request query's threshold is 1000 ms


def user_label(subject: str) -> str:
    """The user as the gateway logs it with `telemetry.user_label: hashed`."""
    return "u-" + hashlib.sha256(subject.encode()).hexdigest()[:12]


def documented_queries() -> dict[str, dict[str, Any]]:
    """The JSON query under each heading of docs/operations.md's "Logs in Elasticsearch"."""
    section = OPERATIONS_DOC.read_text().split("\n## Logs in Elasticsearch\n", 1)[1].split("\n## ", 1)[0]
    return {
        heading: json.loads(body) for heading, body in re.findall(r"^### (.+?)\n.*?^```json\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    }


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
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_BLRP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "300",
            },
        )
        try:
            session = RawSession(gateway.url)
            session.client.headers["authorization"] = f"Bearer {API_KEY}"
            session.initialize()
            assert session.call("tools/call", {"name": "web__echo", "arguments": {"text": "hello"}})["result"]["isError"] is False
            echoed = session.call("tools/call", {"name": "web__headers", "arguments": {}})["result"]["structuredContent"]
            assert "authorization" not in echoed  # the client's credential never travels upstream
            assert "error" in session.call("tools/call", {"name": "nowhere__x", "arguments": {}})
            assert session.call("tools/call", {"name": "web__slow", "arguments": {"seconds": SLOW_SECONDS}})["result"]["isError"] is False
            forged = RawSession(gateway.url)
            assert forged.request("ping", authorization=f"Bearer {FORGED_JWT}").status_code == 401
            assert forged.request("ping", authorization=f"Bearer {API_KEY[::-1]}").status_code == 401
            wait_until(
                lambda: any(r.body == "request completed" and r.attributes.get("tool") == "nowhere__x" for r in otlp.logs()), timeout=15
            )
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
    assert set(call) >= REQUEST_FIELDS, set(REQUEST_FIELDS) - set(call)
    assert call["level"] == "info" and call["method"] == "tools/call" and call["status"] == "success"
    assert call["namespace"] == "web" and call["backend"] == "web-1" and call["session_id"] == run.session_id
    assert call["request_id"] == "2" and isinstance(call["duration_ms"], float) and call["duration_ms"] > 0
    assert call["user"] == user_label("alice")  # telemetry.user_label: hashed
    assert len(call["trace_id"]) == 32 and len(call["span_id"]) == 16
    spans = run.otlp.wait_for(lambda: run.otlp.span_named("gateway.handleRequest", **{"gen_ai.tool.name": "web__echo"}), 15)
    assert (spans[0].trace_id, spans[0].span_id) == (call["trace_id"], call["span_id"])
    failed = [line for line in completed if line.get("tool") == "nowhere__x"]
    assert [(f["status"], f["error_type"], f["error_code"]) for f in failed] == [("client_error", "invalid_params", -32602)]
    # Refused at the door (401), before the body is read: counted and logged once each, as
    # anonymous callers of an unknown method.
    refused = [line for line in completed if line.get("error_type") == "unauthorized"]
    assert [(r["method"], r["status"], r["user"]) for r in refused] == [("other", "client_error", user_label("anonymous"))] * 2
    # Every request the gateway answered has exactly one line: initialize, 4 calls, 2 refusals.
    assert len(completed) == 7, [(c["method"], c["status"]) for c in completed]


def test_no_credential_appears_anywhere(run: Run) -> None:
    exported = json.dumps(
        [[s.name, s.attributes] for s in run.otlp.spans()]
        + [[r.body, r.attributes] for r in run.otlp.logs()]
        + [[m.name, m.points] for m in run.otlp.metrics()],
        default=str,
    )
    outputs = {"gateway log": run.gateway.read_log(), "backend log": run.backend.proc.read_log(), "OTLP export": exported}
    for secret in (API_KEY, FORGED_JWT, API_KEY[::-1], FORGED_JWT.split(".")[2]):
        for where, text in outputs.items():
            assert secret not in text, f"a credential leaked into the {where}"
    assert "alice" not in outputs["OTLP export"] and '"user": "alice"' not in outputs["gateway log"]


# -- the Elasticsearch queries (docs/operations.md, "Logs in Elasticsearch") --------------------


def test_the_documented_queries_are_the_ones_tested() -> None:
    assert set(documented_queries()) == {"Find slow requests", "Authentication failures", "One user's requests"}


def test_find_slow_requests_finds_the_slow_call_and_nothing_else(run: Run) -> None:
    query = documented_queries()["Find slow requests"]
    hits = search(run.lines(), query).hits
    assert [(h["tool"], h["service"]) for h in hits] == [("web__slow", "mcp-gateway")], hits
    assert hits[0]["duration_ms"] >= SLOW_SECONDS * 1000 and hits[0]["message"] == "request completed"
    # The original form (`term` on `service`) finds nothing under dynamic mapping: `service`
    # is analysed text there, hence `service.keyword` in the docs.
    guide_form = json.loads(json.dumps(query).replace('"service.keyword"', '"service"'))
    assert search(run.lines(), guide_form).hits == []


def test_authentication_failures_finds_each_refused_credential_by_user(run: Run) -> None:
    result = search(run.lines(), documented_queries()["Authentication failures"])
    assert [(h["level"], h["message"], h["auth_type"], h["error"]) for h in result.hits] == [
        ("error", "authentication failed", "api_key", "Unauthorized: unknown API key")
    ] * 2
    assert all(len(h["trace_id"]) == 32 for h in result.hits)  # inside the auth.validate span
    assert result.aggregations["by_user"] == [(user_label("anonymous"), 2)]


def test_one_users_requests_finds_that_users_lines_only(run: Run) -> None:
    user = user_label("alice")
    query = json.loads(json.dumps(documented_queries()["One user's requests"]).replace('"alice"', json.dumps(user)))
    hits = search(run.lines(), query).hits
    requests = [line for line in run.lines() if line["message"] == "request completed" and line.get("user") == user]
    assert hits == requests and len(hits) == 5  # initialize and four calls; not the refused callers
