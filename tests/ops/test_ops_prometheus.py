"""Prometheus and Alertmanager configuration, checked by the real promtool and amtool.

What an operator relies on: the configs load, every rule is valid, every alert has been
seen both firing and not firing in `promtool test rules`, the contract's six alerts keep
their names, labels and annotations (and so does our companion MCPGatewayAbsent), the SLOs
have the contract's objectives (docs/operations.md), and alerts are routed by severity.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.ops import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    PROMETHEUS_FEDERATION_CONFIG,
    PROMTOOL_TESTS,
    RULE_FILES,
    amtool,
    promtool,
)
from tests.support.ops.promql import alert_rules
from tests.support.ops.tools import output

# The contract's alerts, as operators know them (docs/operations.md, "Alerts").
GUIDE_ALERTS = {
    "MCPGatewayDown": {
        "expr": 'up{job="mcp-gateway"} == 0',
        "for": "2m",
        "labels": {"severity": "critical", "service": "mcp"},
        "annotations": {
            "summary": "MCP Gateway is down",
            "description": "Gateway {{ $labels.instance }} has been down for more than 2 minutes",
        },
    },
    "MCPHighErrorRate": {
        "expr": None,  # adapted: an error ratio, as its description says (docs/operations.md)
        "for": "5m",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "High error rate detected",
            "description": "Error rate is {{ $value | humanizePercentage }} over the last 5 minutes",
        },
    },
    "MCPRedisDown": {
        "expr": 'redis_up{job="redis"} == 0',
        "for": "2m",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "Redis is unavailable", "description": "Redis instance {{ $labels.instance }} is down"},
    },
    "MCPHighMemoryUsage": {
        "expr": 'process_resident_memory_bytes{job=~"mcp-.*"} / 1024 / 1024 / 1024 > 2',
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "High memory usage",
            "description": "{{ $labels.job }} is using {{ $value | humanize }}GB of memory",
        },
    },
    "MCPConnectionPoolExhausted": {
        "expr": 'mcp_router_pool_connections{state="idle"} == 0',
        "for": "5m",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "Connection pool exhausted", "description": "No idle connections available in pool"},
    },
    "MCPCertificateExpirySoon": {
        "expr": "(x509_cert_expiry - time()) / 86400 < 30",
        "for": "1h",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Certificate expiring soon",
            "description": "Certificate {{ $labels.subject }} expires in {{ $value }} days",
        },
    },
}

# Ours, in the contract's style: a gateway whose `up` series is gone (a dead ECS task takes its
# scraping sidecar along) never makes MCPGatewayDown's `up == 0` true.
OWN_ALERTS = {
    "MCPGatewayAbsent": {
        "expr": 'absent(up{job="mcp-gateway"})',
        "for": "5m",
        "labels": {"severity": "critical", "service": "mcp"},
        "annotations": {
            "summary": "MCP Gateway is absent",
            "description": "No {{ $labels.job }} target has reported for more than 5 minutes",
        },
    },
}

SLO_OBJECTIVES = {"availability": 0.999, "success_rate": 0.995, "latency_p95": 0.95}
BURN_RATE_ALERTS = {f"{name}BurnRate{speed}" for name in ("MCPAvailability", "MCPSuccessRate", "MCPLatency") for speed in ("Fast", "Slow")}


def _squash(expr: str) -> str:
    return re.sub(r"\s+", " ", expr).strip()


def _check_ok(result) -> None:
    assert result.returncode == 0, output(result)


# --- promtool ---------------------------------------------------------------------


def test_regional_prometheus_config_and_its_rule_files_load() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG)
    _check_ok(result)
    # check config also checks every rule file the config loads.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_federation_prometheus_config_loads() -> None:
    _check_ok(promtool("check", "config", PROMETHEUS_FEDERATION_CONFIG))


def test_rule_files_are_valid() -> None:
    _check_ok(promtool("check", "rules", *RULE_FILES))


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", *PROMTOOL_TESTS, cwd=PROMETHEUS_DIR)
    _check_ok(result)
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS), output(result)


def _alert_cases() -> dict[str, set[bool]]:
    """alertname -> {True if some test expects it firing, False if some test expects it quiet}."""
    seen: dict[str, set[bool]] = {}
    for path in PROMTOOL_TESTS:
        doc = yaml.safe_load(path.read_text())
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                seen.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    return seen


def test_every_alert_is_unit_tested_both_firing_and_not_firing() -> None:
    alerts = alert_rules()
    cases = _alert_cases()
    missing = {name: sorted({True, False} - cases.get(name, set())) for name in alerts}
    missing = {name: states for name, states in missing.items() if states}
    assert not missing, f"alerts without a firing (True) / not-firing (False) test case: {missing}"
    assert set(GUIDE_ALERTS) | set(OWN_ALERTS) | BURN_RATE_ALERTS <= set(alerts)


def test_promtool_tests_cover_every_rule_file() -> None:
    tested = set()
    for path in PROMTOOL_TESTS:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            tested.add((path.parent / rule_file).resolve())
    assert {p.resolve() for p in RULE_FILES} <= tested


# --- the contract's alerts and SLOs ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(GUIDE_ALERTS | OWN_ALERTS))
def test_alert_keeps_its_name_labels_and_annotations(name: str) -> None:
    rule = alert_rules()[name]
    expected = (GUIDE_ALERTS | OWN_ALERTS)[name]
    assert rule["labels"] == expected["labels"]
    assert rule["annotations"] == expected["annotations"]
    assert rule["for"] == expected["for"]
    if expected["expr"] is not None:
        assert _squash(rule["expr"]) == expected["expr"]


def test_high_error_rate_alert_measures_the_share_of_failed_requests() -> None:
    """Among the requests the service could serve: a caller's mistakes neither fire nor dilute it
    (promtool cases in otel/prometheus/tests/mcp_alerts_test.yml)."""
    expr = _squash(alert_rules()["MCPHighErrorRate"]["expr"])
    assert expr == (
        'sum by (region) (rate(mcp_gateway_requests_total{status="error"}[5m])) / '
        'sum by (region) (rate(mcp_gateway_requests_total{status!="client_error"}[5m])) > 0.05'
    )


def test_every_alert_has_a_severity_the_alertmanager_routes() -> None:
    for name, rule in alert_rules().items():
        assert rule["labels"].get("severity") in {"critical", "warning"}, name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name


def _slo_rules() -> list[dict]:
    doc = yaml.safe_load((PROMETHEUS_DIR / "rules" / "mcp_slo.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_slo_objectives_are_the_guides() -> None:
    objectives = {
        rule["labels"]["slo"]: float(re.fullmatch(r"vector\((.+)\)", rule["expr"]).group(1))
        for rule in _slo_rules()
        if rule.get("record") == "slo:objective:ratio"
    }
    assert objectives == SLO_OBJECTIVES


def test_each_slo_has_error_ratios_for_every_burn_rate_window_and_a_30_day_budget() -> None:
    windows = {"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"}
    recorded: dict[str, set[str]] = {}
    for rule in _slo_rules():
        match = re.fullmatch(r"slo:sli_error:ratio_rate(\w+)", rule.get("record", ""))
        if match:
            recorded.setdefault(rule["labels"]["slo"], set()).add(match.group(1))
    assert recorded == {slo: windows for slo in SLO_OBJECTIVES}
    budgets = {r["labels"]["slo"] for r in _slo_rules() if r.get("record") == "slo:error_budget_remaining:ratio"}
    assert budgets == set(SLO_OBJECTIVES)


def test_latency_slo_counts_requests_within_500_ms() -> None:
    latency = [r for r in _slo_rules() if r.get("labels", {}).get("slo") == "latency_p95" and "record" in r]
    windows = [r for r in latency if r["record"].startswith("slo:sli_error:ratio_rate")]
    assert windows and all('mcp_gateway_request_duration_seconds_bucket{le="0.5"}' in r["expr"] for r in windows)


@pytest.mark.parametrize(
    ("speed", "severity", "pairs"),
    [
        ("Fast", "critical", [("1h", "5m", "14.4"), ("6h", "30m", "6")]),
        ("Slow", "warning", [("1d", "2h", "3"), ("3d", "6h", "1")]),
    ],
)
def test_burn_rate_alerts_use_two_windows_per_burn_rate(speed: str, severity: str, pairs: list) -> None:
    alerts = alert_rules()
    for name in ("MCPAvailability", "MCPSuccessRate", "MCPLatency"):
        rule = alerts[f"{name}BurnRate{speed}"]
        assert rule["labels"]["severity"] == severity
        slo = rule["labels"]["slo"]
        budget = f"(1 - {SLO_OBJECTIVES[slo]})"
        expr = _squash(rule["expr"])
        for long, short, factor in pairs:
            assert (
                f'slo:sli_error:ratio_rate{long}{{slo="{slo}"}} > ({factor} * {budget}) and '
                f'slo:sli_error:ratio_rate{short}{{slo="{slo}"}} > ({factor} * {budget})'
            ) in expr


# --- scrape configuration -------------------------------------------------------------


def _jobs(path: Path) -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(path.read_text())["scrape_configs"]}


def test_scrape_jobs_use_our_job_names_and_ports() -> None:
    jobs = _jobs(PROMETHEUS_CONFIG)
    assert set(jobs) == {"mcp-gateway", "mcp-bridge", "mcp-router", "redis"}
    ports = {name: {sd["port"] for sd in job.get("dns_sd_configs", [])} for name, job in jobs.items()}
    assert ports["mcp-gateway"] == {9090}
    assert ports["mcp-bridge"] == {9092}
    router = jobs["mcp-router"]
    assert router["static_configs"] == [{"targets": ["localhost:9091"]}]
    assert {"target_label": "instance", "replacement": "router-local"}.items() <= router["relabel_configs"][0].items()


def test_regional_prometheus_labels_its_series_with_the_region_and_loads_all_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["external_labels"] == {"region": "${MCP_REGION}"}
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"]


def test_federation_pulls_the_guides_series_and_the_recording_rules() -> None:
    job = _jobs(PROMETHEUS_FEDERATION_CONFIG)["federate"]
    assert job["metrics_path"] == "/federate"
    assert job["honor_labels"] is True
    matchers = job["params"]["match[]"]
    assert {'{job=~"mcp-.*"}', '{__name__=~"mcp_.*"}'} <= set(matchers)
    assert '{__name__=~".+:.+"}' in matchers  # recording rules have a colon in their name
    files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
    assert any(list(PROMETHEUS_DIR.glob(pattern)) for pattern in files)


# --- Alertmanager -------------------------------------------------------------------


def test_alertmanager_config_is_valid() -> None:
    result = amtool("check-config", ALERTMANAGER_CONFIG)
    _check_ok(result)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=MCPGatewayDown"], "mcp-pager"),
        (["severity=critical", "alertname=MCPGatewayAbsent", "service=mcp", "job=mcp-gateway"], "mcp-pager"),
        (["severity=critical", "alertname=MCPSuccessRateBurnRateFast", "slo=success_rate"], "mcp-pager"),
        (["severity=warning", "alertname=MCPHighMemoryUsage"], "mcp-ticket"),
        (["alertname=SomethingWithoutSeverity"], "mcp-ticket"),
    ],
)
def test_alerts_are_routed_by_severity(labels: list[str], receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", f"--verify.receivers={receiver}", *labels)
    _check_ok(result)
    assert result.stdout.strip() == receiver


def test_alertmanager_reads_its_secrets_from_files() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    text = ALERTMANAGER_CONFIG.read_text()
    assert "hooks.slack.com" not in text
    for receiver in config["receivers"]:
        for kind, settings in receiver.items():
            if kind.endswith("_configs"):
                for item in settings:
                    secrets = {k for k in item if k in ("api_url", "routing_key", "service_key", "url")}
                    assert not secrets, f"{receiver['name']}: {secrets} written literally; use *_file"
