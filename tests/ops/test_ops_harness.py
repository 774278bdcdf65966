"""The real-Prometheus harness (tests/support/ops/prometheus.py), proven on Prometheus itself.

The live proof against a running gateway comes later and uses the same harness: a
`prometheus` server on a free loopback port scraping the given targets every second,
with the project's rule files loaded. Here it scrapes its own /metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ops import (
    RULE_FILES,
    PrometheusError,
    PrometheusServer,
    all_expressions,
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer([], tmp_path_factory.mktemp("prometheus"), rule_files=RULE_FILES, scrape_self=True)
    with server:
        yield server
    assert not server.running


def test_prometheus_scrapes_its_own_metrics_and_answers_queries(prometheus: PrometheusServer) -> None:
    up = prometheus.wait_for_series('up{job="prometheus"} == 1', timeout=20)
    assert up[0]["metric"]["instance"] == prometheus.address
    # Needs two scrapes one second apart: rate() over what was scraped.
    rate = prometheus.wait_for_series('sum(rate(prometheus_http_requests_total{handler="/metrics"}[10s])) > 0', timeout=20)
    assert float(rate[0]["value"][1]) > 0
    assert prometheus.target_health() == {f"prometheus/{prometheus.address}": "up"}


def test_project_rules_are_loaded_and_evaluate_without_errors(prometheus: PrometheusServer) -> None:
    groups = prometheus.wait_for_rule_evaluation(timeout=20)
    loaded = {(Path(g["file"]).name, g["name"]) for g in groups}
    assert {name for name, _ in loaded} == {p.name for p in RULE_FILES}
    assert {"mcp_critical", "mcp_warning", "mcp_slo_sli", "mcp_slo_alerts"} <= {g for _, g in loaded}
    unhealthy = [f"{r['name']}: {r.get('lastError')}" for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not unhealthy


def test_every_dashboard_and_rule_expression_is_accepted_by_the_server(prometheus: PrometheusServer) -> None:
    rejected = []
    for expression in all_expressions():
        try:
            prometheus.query(expression.expr)
        except PrometheusError as err:
            rejected.append(f"{expression}: {err}")
    assert not rejected, "\n".join(rejected)


def test_a_bad_query_raises_and_waiting_for_absent_series_times_out(prometheus: PrometheusServer) -> None:
    with pytest.raises(PrometheusError, match="bad_data"):
        prometheus.query("sum(rate(")
    with pytest.raises(TimeoutError, match="mcp_gateway_requests_total"):
        prometheus.wait_for_series("mcp_gateway_requests_total", timeout=0.3)
