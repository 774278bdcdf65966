"""The gateway's `/metrics` as Prometheus sees it, after real traffic.

A real gateway (Redis state, a Streamable HTTP and a WebSocket backend, a certificate to watch)
serves real HTTP and WebSocket clients, with successes and errors; then its scrape endpoint is
read in both formats Prometheus asks for, parsed with prometheus_client's parsers, checked
against the metric contract the dashboards and rules are written against (names, types, labels,
letter for letter), run through `promtool check metrics`, and scraped by a real Prometheus that
answers every rule's and panel's query.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from app.telemetry import UserLabel
from tests.support import (
    LOOPBACK,
    RedisServer,
    free_port,
    start_backend,
    start_gateway,
    wait_until,
)
from tests.support.certs import self_signed_certificate
from tests.support.mcp_http import RawSession
from tests.support.mcp_ws import WsSession
from tests.support.ops import METRICS, PrometheusServer, ScrapeJob

#: Metrics whose features exist now, so real traffic must produce them.
PRODUCED = (
    "mcp_gateway_connections_total",
    "mcp_gateway_requests_total",
    "mcp_gateway_request_duration_seconds",
    "mcp_gateway_backend_health",
    "mcp_gateway_circuit_breaker_state",
    "mcp_gateway_rate_limit_remaining",
    "mcp_gateway_session_duration_seconds",
    "mcp_gateway_redis_operations_duration_seconds",
    "process_resident_memory_bytes",
    "x509_cert_expiry",
)
#: Declared in the same module; recorded by the auth step and the TCP bridge when they run.
DECLARED = ("mcp_gateway_auth_attempts_total", "mcp_gateway_tcp_frames_total")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass
class Scrapes:
    base: str
    metrics_url: str
    text: str
    openmetrics: str
    certificate_subject: str


def _traffic(base: str) -> WsSession:
    """HTTP and WebSocket calls, successes and errors; returns a WebSocket left open."""
    http = RawSession(base)
    http.initialize()
    assert "result" in http.call("tools/list")
    assert http.call("tools/call", {"name": "web__echo", "arguments": {"text": "hi"}})["result"]["isError"] is False
    assert http.call("tools/call", {"name": "sock__add", "arguments": {"a": 1, "b": 2}})["result"]["isError"] is False
    assert http.call("tools/call", {"name": "web__fail", "arguments": {"message": "boom"}})["result"]["isError"] is True
    assert "error" in http.call("tools/call", {"name": "nowhere__echo", "arguments": {}})
    assert http.call("tools/call", {"name": "down__echo", "arguments": {}})["error"]["code"] == -32050
    assert "result" in http.call("ping")
    assert http.post(b"{not json").status_code == 400
    assert http.client.delete(http.url, headers=http.headers()).status_code == 204
    http.close()

    ws = WsSession(base.replace("http://", "ws://") + "/ws")
    ws.initialize()
    assert ws.call("tools/call", {"name": "sock__echo", "arguments": {"text": "ws"}})["result"]["isError"] is False
    assert "error" in ws.call("prompts/get", {"name": "nowhere__greet"})
    closed = WsSession(base.replace("http://", "ws://") + "/ws")
    closed.initialize()
    closed.close()
    return ws


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Scrapes]:
    workdir = tmp_path_factory.mktemp("telemetry-metrics")
    if not redis_server.running:
        redis_server.start()
    web = start_backend("web", workdir, "http")
    sock = start_backend("sock", workdir, "ws")
    certificate, subject = self_signed_certificate(workdir, "gateway.test", days=20)
    metrics_port = free_port()
    gateway = start_gateway(
        {
            "redis_url": redis_server.url,
            # Unauthenticated on loopback, the per-IP budget is off by default: set one, as a
            # gateway on the network has, so the remaining-capacity gauge is produced.
            "rate_limits": {"per_ip": "100000/minute"},
            "telemetry": {"certificate_files": [str(certificate)]},
            "namespaces": {
                "web": {"backends": [{"name": "web-1", "url": web.url}]},
                "sock": {"backends": [{"name": "sock-1", "url": sock.url}]},
                "down": {"backends": [{"name": "down-1", "url": f"http://{LOOPBACK}:{free_port()}/mcp"}]},
            },
        },
        workdir,
        env={"MCP_GATEWAY_METRICS_PORT": str(metrics_port)},
    )
    metrics_url = f"http://{LOOPBACK}:{metrics_port}/metrics"
    ws = _traffic(gateway.url)
    try:
        # The closed WebSocket's session ends after its close is processed: wait for it.
        wait_until(lambda: "mcp_gateway_session_duration_seconds_count 2.0" in httpx.get(metrics_url).text, timeout=10)
        text = httpx.get(metrics_url).text
        openmetrics = httpx.get(metrics_url, headers={"accept": OPENMETRICS}).text
        yield Scrapes(gateway.url, metrics_url, text, openmetrics, subject)
    finally:
        ws.close()
        for proc in (gateway.proc, web.proc, sock.proc):
            proc.stop()


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in parse_text(text)}


def _family(families: dict[str, Any], name: str) -> Any:
    """A family by the name Prometheus shows (the text parser drops a counter's `_total`)."""
    return families.get(name) or families.get(name.removesuffix("_total"))


def _series(families: dict[str, Any], name: str, **labels: str) -> list[Any]:
    family = _family(families, name)
    return [s for s in (family.samples if family else []) if all(s.labels.get(k) == v for k, v in labels.items())]


def test_every_implemented_metric_has_the_contracts_name_type_and_labels(scrapes: Scrapes) -> None:
    families = _families(scrapes.text)
    for name in PRODUCED:
        contract = METRICS[name]
        family = _family(families, name)
        assert family is not None, f"{name} is not in the scrape:\n{scrapes.text}"
        assert family.type == contract.type, (name, family.type)
        assert family.samples, name
        suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}.get(contract.type, ("",))
        for sample in family.samples:
            assert sample.name in {name + s for s in suffixes} | ({name} if contract.type != "histogram" else set()), sample.name
            labels = set(sample.labels) - ({"le"} if sample.name.endswith("_bucket") else set())
            assert labels == contract.labels, (name, sample)
            for label, allowed in contract.values.items():
                assert sample.labels[label] in allowed, (name, sample)


def test_declared_but_not_yet_recorded_metrics_keep_the_contract_when_they_appear(scrapes: Scrapes) -> None:
    families = _families(scrapes.text)
    for name in DECLARED:
        family = _family(families, name)
        if family is None:
            continue  # Recorded by auth and the TCP bridge (its own process, :9092).
        assert family.type == METRICS[name].type
        assert all(set(s.labels) == METRICS[name].labels for s in family.samples)


def test_traffic_shows_up_with_the_right_label_values(scrapes: Scrapes) -> None:
    families = _families(scrapes.text)
    # Counters: the success and the errors of both edges, per namespace.
    # The default `telemetry.user_label` is `hashed`: a pseudonym, never the subject itself.
    assert {s.labels["user"] for s in _series(families, "mcp_gateway_requests_total")} == {UserLabel("hashed")("anonymous")}
    ok_web = _series(families, "mcp_gateway_requests_total", method="tools/call", status="success", namespace="web")
    assert ok_web and ok_web[0].value == 2  # echo, and fail (a tool error is a successful JSON-RPC answer)
    assert _series(families, "mcp_gateway_requests_total", method="tools/call", status="success", namespace="sock")[0].value == 2
    # The caller's mistakes (an unknown tool, an unknown prompt, an unparsable body) are
    # `client_error`; a backend that is down is the service's `error`.
    assert _series(families, "mcp_gateway_requests_total", method="tools/call", status="client_error", namespace="_gateway")[0].value == 1
    assert _series(families, "mcp_gateway_requests_total", method="prompts/get", status="client_error")[0].value == 1
    assert _series(families, "mcp_gateway_requests_total", method="other", status="client_error")[0].value == 1  # the unparsable body
    assert _series(families, "mcp_gateway_requests_total", method="tools/call", status="error", namespace="down")[0].value == 1
    assert _series(families, "mcp_gateway_requests_total", method="initialize", status="success")[0].value == 3
    # Latency by protocol and replica.
    assert _series(
        families, "mcp_gateway_request_duration_seconds", method="tools/call", protocol="websocket", backend="sock-1", namespace="sock"
    )
    assert _series(families, "mcp_gateway_request_duration_seconds", method="tools/call", protocol="http", backend="web-1", namespace="web")
    # One WebSocket still open; HTTP exchanges all finished.
    assert _series(families, "mcp_gateway_connections_total", protocol="websocket", state="active")[0].value == 1
    assert _series(families, "mcp_gateway_connections_total", protocol="http", state="active")[0].value == 0
    assert {s.labels["backend"]: s.value for s in _series(families, "mcp_gateway_backend_health")} == {"web-1": 1, "sock-1": 1, "down-1": 0}
    assert _series(families, "mcp_gateway_session_duration_seconds", le="+Inf")[0].value == 2  # DELETE and the closed WebSocket
    operations = {s.labels["operation"] for s in _series(families, "mcp_gateway_redis_operations_duration_seconds")}
    assert {"create_session", "get_session", "delete_session"} <= operations
    [cert] = _series(families, "x509_cert_expiry")
    assert cert.labels == {"subject": scrapes.certificate_subject}
    assert 19 < (cert.value - datetime.datetime.now().timestamp()) / 86400 < 21
    assert _series(families, "process_resident_memory_bytes")[0].value > 10 * 1024 * 1024


def test_latency_buckets_serve_the_slo(scrapes: Scrapes) -> None:
    families = _families(scrapes.text)
    bounds = {s.labels["le"] for s in _series(families, "mcp_gateway_request_duration_seconds") if s.name.endswith("_bucket")}
    assert {"0.001", "0.5", "10.0", "+Inf"} <= bounds
    assert min(float(b) for b in bounds) == 0.001 and max(float(b) for b in bounds - {"+Inf"}) == 10.0


def test_the_semantic_convention_metric_is_there_too(scrapes: Scrapes) -> None:
    families = _families(scrapes.text)
    family = families["mcp_server_operation_duration_seconds"]
    assert family.type == "histogram"
    labels = {frozenset(s.labels.items()) for s in family.samples if s.name.endswith("_count")}
    assert any(("error_type", "tool_error") in ls and ("gen_ai_tool_name", "web__fail") in ls for ls in labels)
    assert any(("error_type", "-32602") in ls for ls in labels)


def test_openmetrics_scrape_has_the_same_names(scrapes: Scrapes) -> None:
    """Prometheus asks for OpenMetrics first: the names must survive that format too."""
    samples = {s.name for family in parse_openmetrics(scrapes.openmetrics) for s in family.samples}
    text_samples = {s.name for family in parse_text(scrapes.text) for s in family.samples}
    assert {
        "mcp_gateway_requests_total",
        "mcp_gateway_connections_total",
        "mcp_gateway_request_duration_seconds_bucket",
        "x509_cert_expiry",
        "process_resident_memory_bytes",
    } <= samples
    assert text_samples - {"target_info"} <= samples | {"target_info"}
    assert not [name for name in samples if re.search(r"(_seconds_seconds|_bytes_bytes|_total_total)", name)]


def test_promtool_accepts_the_scrape(scrapes: Scrapes) -> None:
    """The only lint is the contract's own choice: a gauge named `mcp_gateway_connections_total`."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian package prometheus); scripts/test installs it")
    result = subprocess.run([promtool, "check", "metrics"], input=scrapes.text, capture_output=True, text=True, timeout=30)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert problems == ['mcp_gateway_connections_total non-counter metrics should not have "_total" suffix'], problems


def test_a_real_prometheus_answers_the_guides_queries(scrapes: Scrapes, tmp_path: Path) -> None:
    target = scrapes.metrics_url.split("//")[1].split("/")[0]
    with PrometheusServer([ScrapeJob("mcp-gateway", [target])], tmp_path) as prometheus:
        prometheus.wait_for_series('up{job="mcp-gateway"} == 1', timeout=30)
        RawSession(scrapes.base).initialize()  # traffic between scrapes, so rates are not zero
        queries = [
            "sum(rate(mcp_gateway_requests_total[1m])) > 0",
            'sum by (namespace) (mcp_gateway_requests_total{status="error"})',
            "sum by (user) (mcp_gateway_requests_total)",
            'histogram_quantile(0.95, sum by (le, protocol) (rate(mcp_gateway_request_duration_seconds_bucket{protocol="http"}[1m])))',
            'sum(mcp_gateway_request_duration_seconds_bucket{le="0.5"}) / sum(mcp_gateway_request_duration_seconds_count)',
            "sum by (protocol) (mcp_gateway_connections_total)",
            'process_resident_memory_bytes{job=~"mcp-.*"} / 1024 / 1024 / 1024 < 2',
            "(x509_cert_expiry - time()) / 86400 < 30",
            "max by (namespace, backend) (mcp_gateway_backend_health)",
            "histogram_quantile(0.95, sum by (le, operation) (rate(mcp_gateway_redis_operations_duration_seconds_bucket[1m])))",
        ]
        for query in queries:
            assert prometheus.wait_for_series(query, timeout=30), query
        metadata = prometheus.api("metadata")
        assert metadata["mcp_gateway_connections_total"][0]["type"] == "gauge"
        # Prometheus scrapes OpenMetrics, whose counter family drops `_total` (the series keep it).
        assert metadata["mcp_gateway_requests"][0]["type"] == "counter"
        assert metadata["mcp_gateway_request_duration_seconds"][0]["type"] == "histogram"
