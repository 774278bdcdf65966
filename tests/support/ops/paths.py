"""Where the operations-as-code files live in the repository."""

from __future__ import annotations

from ..paths import REPO_ROOT

REPO = REPO_ROOT

COLLECTOR_DIR = REPO / "otel" / "collector"

PROMETHEUS_DIR = REPO / "otel" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_FEDERATION_CONFIG = PROMETHEUS_DIR / "federation.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
PROMTOOL_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

DASHBOARDS_DIR = REPO / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
