"""Helpers for the operations-as-code tests (tests/ops/test_ops_*.py).

- `paths`: where the Collector configs, Prometheus rules and dashboards live.
- `contract`: the metric names and labels the gateway, bridge and router expose.
- `promql`: every PromQL expression in the dashboards and rules, and a small reader
  that finds the metric selectors and grouping labels in an expression (and gives its
  comparisons the `bool` modifier, to see what an alert watches when it does not fire).
- `collector`: structural checks of an OpenTelemetry Collector configuration against the
  pinned distribution's component list.
- `prometheus`: a real `prometheus` server on a free loopback port, scraping given
  targets and loading the project's rules, with `query` and `wait_for_series`.
- `redis_exporter`: a real Redis exporter (`redis_up`, job `redis`) in front of a redis-server.
- `tools`: running promtool and amtool.
"""

from __future__ import annotations

from .collector import CollectorDistribution, check_collector_config, load_distribution
from .contract import METRICS, TARGET_LABELS, Metric, series_names
from .paths import (
    ALERTMANAGER_CONFIG,
    COLLECTOR_DIR,
    DASHBOARD_FILES,
    DASHBOARDS_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    PROMETHEUS_FEDERATION_CONFIG,
    PROMTOOL_TESTS,
    REPO,
    RULE_FILES,
)
from .prometheus import PrometheusError, PrometheusServer, ScrapeJob
from .promql import (
    Expression,
    Selector,
    all_expressions,
    all_values,
    comparisons_as_bool,
    dashboard_expressions,
    grouping_labels,
    metric_names,
    recording_rule_names,
    rule_expressions,
    selectors,
    substitute,
    variable_selector,
)
from .redis_exporter import RedisExporter
from .tools import amtool, promtool

__all__ = [
    "ALERTMANAGER_CONFIG",
    "COLLECTOR_DIR",
    "DASHBOARDS_DIR",
    "DASHBOARD_FILES",
    "METRICS",
    "PROMETHEUS_CONFIG",
    "PROMETHEUS_DIR",
    "PROMETHEUS_FEDERATION_CONFIG",
    "PROMTOOL_TESTS",
    "REPO",
    "RULE_FILES",
    "TARGET_LABELS",
    "CollectorDistribution",
    "Expression",
    "Metric",
    "PrometheusError",
    "PrometheusServer",
    "RedisExporter",
    "ScrapeJob",
    "Selector",
    "all_expressions",
    "all_values",
    "amtool",
    "check_collector_config",
    "comparisons_as_bool",
    "dashboard_expressions",
    "grouping_labels",
    "load_distribution",
    "metric_names",
    "promtool",
    "recording_rule_names",
    "rule_expressions",
    "selectors",
    "series_names",
    "substitute",
    "variable_selector",
]
