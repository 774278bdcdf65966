"""Grafana dashboards (dashboards/*.json) and their provisioning.

What an operator relies on: the dashboards import anywhere (valid JSON, stable uids, a
data-source variable instead of a hard-coded data source), every panel the contract names (docs/operations.md)
is there, every expression is valid PromQL over metrics that exist (the contract or a
recording rule), and the panels whose guide expression had to be corrected compute
what their title promises.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.ops import (
    DASHBOARD_FILES,
    DASHBOARDS_DIR,
    METRICS,
    TARGET_LABELS,
    all_expressions,
    all_values,
    dashboard_expressions,
    grouping_labels,
    promtool,
    recording_rule_names,
    selectors,
    series_names,
    substitute,
)
from tests.support.ops.contract import JOBS
from tests.support.ops.tools import output

DASHBOARDS = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in DASHBOARD_FILES}
DS_VAR = "${datasource}"
#: The filters each dashboard offers. The router's metrics have no namespace; the SLO
#: dashboard's SLIs and budgets are per region (recording rules aggregate instances away).
FILTERS = {
    "mcp-gateway": ("region", "namespace", "instance"),
    "mcp-router-overview": ("region", "instance"),
    "mcp-slo": ("region",),
}
#: Recording rules that keep `region` (the objectives and budgets are constants: no labels).
REGIONAL_RULES = re.compile(r"^(region[a-z_]*:|slo:sli_error:|slo:error_budget_remaining:)")

ROUTER_PANELS = {"Request Rate", "Request Latency", "Active Connections", "Error Rate"}
GATEWAY_KEY_PANELS = {
    "Connection distribution by protocol",
    "Request rate by namespace",
    "Backend health matrix",
    "Circuit breaker states",
    "Rate limit utilization (lowest remaining capacity)",
    "Session distribution",
}
GATEWAY_CUSTOM_PANELS = {
    "Connection pool efficiency",
    "Authentication success rate",
    "TCP vs WebSocket latency (p95 ratio)",
    "Latency percentiles",
    "Throughput",
    "Error budget consumption",
    "Latency heatmap",
    "Backend performance matrix (p95)",
    "Methods usage",
    "User activity",
    "Namespace utilization",
    "Estimated monthly requests",
    "Data transfer estimate (GB)",
    "Connection growth (30-day forecast)",
    "Memory usage trend (30-day forecast)",
}
# Guide expressions kept word for word (whitespace aside): panel title -> expressions.
GUIDE_VERBATIM = {
    ("mcp-router-overview", "Request Rate"): ["rate(mcp_router_requests_total[5m])"],
    ("mcp-router-overview", "Active Connections"): ["mcp_router_active_connections"],
    ("mcp-router-overview", "Error Rate"): ['rate(mcp_router_requests_total{status="error"}[5m])'],
    ("mcp-gateway", "Throughput"): ["sum(rate(mcp_gateway_requests_total[1m]))"],
    ("mcp-router-overview", "Response bytes per second"): ["sum(rate(mcp_router_response_size_bytes_sum[1m]))"],
    ("mcp-gateway", "Latency heatmap"): ["sum(rate(mcp_gateway_request_duration_seconds_bucket[5m])) by (le)"],
    ("mcp-gateway", "Methods usage"): ["topk(10, sum by (method) (rate(mcp_gateway_requests_total[1h])))"],
    ("mcp-gateway", "User activity"): ["topk(20, sum by (user) (rate(mcp_gateway_requests_total[1h])))"],
    ("mcp-gateway", "Namespace utilization"): ["sum by (namespace) (rate(mcp_gateway_requests_total[5m]))"],
    ("mcp-gateway", "Estimated monthly requests"): ["sum(increase(mcp_gateway_requests_total[30d]))"],
    ("mcp-gateway", "Data transfer estimate (GB)"): ["sum(increase(mcp_router_response_size_bytes_sum[30d])) / 1024 / 1024 / 1024"],
    ("mcp-gateway", "Memory usage trend (30-day forecast)"): [
        'predict_linear(process_resident_memory_bytes{job="mcp-gateway"}[7d], 30 * 86400)'
    ],
}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unfiltered(expr: str) -> str:
    """`expr` without the template-variable filters (`label=~"$var"`) the dashboards add."""
    expr = re.sub(r',?\s*\w+=~"\$\{?\w+\}?"', "", expr)
    return re.sub(r"\{\s*,?\s*", "{", expr).replace("{}", "")


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _panel(uid: str, title: str) -> dict:
    matches = [p for p in _panels(DASHBOARDS[uid]) if p["title"] == title]
    assert len(matches) == 1, f"{uid}: {len(matches)} panels titled {title!r}"
    return matches[0]


def _titles(uid: str) -> set[str]:
    return {p["title"] for p in _panels(DASHBOARDS[uid]) if p["type"] != "row"}


# --- structure ----------------------------------------------------------------------


def test_dashboards_have_stable_unique_uids() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARD_FILES]
    assert sorted(uids) == ["mcp-gateway", "mcp-router-overview", "mcp-slo"]
    for path in DASHBOARD_FILES:
        assert path.stem == json.loads(path.read_text())["uid"], "file name follows the uid"


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_dashboard_has_a_prometheus_datasource_variable_and_uses_it_everywhere(uid: str) -> None:
    dashboard = DASHBOARDS[uid]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DS_VAR}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": DS_VAR}, panel["title"]
    # No data source is named anywhere else (ids or uids of one particular Grafana).
    text = json.dumps(dashboard)
    uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {uid, DS_VAR, "-- Grafana --"}
    assert not uids, f"hard-coded data source uids: {uids}"


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_dashboard_is_organised_in_rows_and_panels_do_not_overlap(uid: str) -> None:
    panels = DASHBOARDS[uid]["panels"]
    assert panels[0]["type"] == "row"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert len(rows) == len(set(rows)) >= 2
    ids = [p["id"] for p in _panels(DASHBOARDS[uid])]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_dashboard_filters_by_region_namespace_and_instance(uid: str) -> None:
    """A global Grafana must not sum every region together: each label the dashboard's metrics
    carry is a multi-value variable (All by default) fed by the data source's label values."""
    variables = {v["name"]: v for v in DASHBOARDS[uid]["templating"]["list"]}
    for name in FILTERS[uid]:
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == {"type": "prometheus", "uid": DS_VAR}, name
        assert variable["includeAll"] is True and variable["multi"] is True, name
        # ".*" also matches series without the label (a regional Prometheus adds `region` only
        # on federation and remote write).
        assert variable["allValue"] == ".*", name
        assert re.fullmatch(rf"label_values\(.+, {name}\)", variable["query"]), variable["query"]
        assert variable["refresh"] in (1, 2), name


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_query_uses_the_filters(uid: str) -> None:
    names = series_names()
    missing = []
    for panel in _panels(DASHBOARDS[uid]):
        for target in panel.get("targets", []):
            for s in selectors(target["expr"]):
                labels = names[s.name][1] if s.name in names else ({"region"} if REGIONAL_RULES.match(s.name or "") else set())
                have = {(label, value) for label, op, value in s.matchers if op == "=~"}
                matched = [label for label, _, _ in s.matchers]
                if len(matched) != len(set(matched)):
                    missing.append(f"{panel['title']!r} {target['refId']}: {s.name} matches a label twice: {matched}")
                want = {(label, f"${label}") for label in FILTERS[uid] if label in labels}
                if not want <= have:
                    missing.append(f"{panel['title']!r} {target['refId']}: {s.name} lacks {sorted(want - have)}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_has_a_unit(uid: str) -> None:
    missing = [
        p["title"] for p in _panels(DASHBOARDS[uid]) if p["type"] != "row" and not p.get("fieldConfig", {}).get("defaults", {}).get("unit")
    ]
    assert not missing, f"panels without a unit: {missing}"


def test_selecting_a_region_and_an_instance_shows_only_theirs(tmp_path: Path) -> None:
    labels = 'status="success", method="tools/call", namespace="github", user="u-1"'
    series = {
        f'mcp_gateway_requests_total{{region="eu-west", instance="a", {labels}}}': "0+60x10",
        f'mcp_gateway_requests_total{{region="eu-west", instance="b", {labels}}}': "0+120x10",
        f'mcp_gateway_requests_total{{region="us-east", instance="c", {labels}}}': "0+600x10",
    }
    throughput = "mcp-gateway", "Throughput"
    _evaluate(
        tmp_path,
        series,
        [
            (_expr(*throughput), [("{}", 13)]),
            (_expr(*throughput, region="eu-west"), [("{}", 3)]),
            (_expr(*throughput, region="(eu-west|us-east)", instance="b"), [("{}", 2)]),
        ],
    )


def test_router_overview_has_the_guides_four_panels() -> None:
    assert _titles("mcp-router-overview") >= ROUTER_PANELS


def test_gateway_dashboard_has_the_guides_key_and_custom_panels() -> None:
    titles = _titles("mcp-gateway")
    assert titles >= GATEWAY_KEY_PANELS, GATEWAY_KEY_PANELS - titles
    assert titles >= GATEWAY_CUSTOM_PANELS, GATEWAY_CUSTOM_PANELS - titles


def test_gateway_dashboard_shows_every_gateway_metric() -> None:
    used = {name for e in dashboard_expressions() for s in selectors(e.expr) if (name := s.name)}
    shown = {series_names()[name][0].name for name in used if name in series_names()}
    gateway = {name for name in METRICS if name.startswith("mcp_gateway_")}
    router = {name for name in METRICS if name.startswith("mcp_router_")}
    assert gateway | router <= shown, (gateway | router) - shown


def test_slo_dashboard_shows_each_slo_with_budget_and_burn_rate() -> None:
    dashboard = DASHBOARDS["mcp-slo"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    for slo, row in (
        ("availability", "Availability (99.9 %)"),
        ("success_rate", "Request success rate (99.5 %)"),
        ("latency_p95", "Latency (p95 under 500 ms)"),
    ):
        assert row in rows
        exprs = " ".join(_unfiltered(t["expr"]) for p in _panels(dashboard) for t in p.get("targets", []))
        assert f'slo:error_budget_remaining:ratio{{slo="{slo}"}}' in exprs
        assert f'slo:sli_error:ratio_rate1h{{slo="{slo}"}}' in exprs


@pytest.mark.parametrize(("key", "exprs"), sorted(GUIDE_VERBATIM.items()))
def test_guide_expressions_are_kept_where_they_are_correct(key: tuple[str, str], exprs: list[str]) -> None:
    panel = _panel(*key)
    assert [_squash(_unfiltered(t["expr"])) for t in panel["targets"]] == exprs


# --- expressions ----------------------------------------------------------------------


def test_every_dashboard_and_rule_expression_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses the expression of every recording rule; so make one per expression.
    exprs = all_expressions()
    rules = [{"record": f"check:expression:{i}", "expr": e.expr} for i, e in enumerate(exprs)]
    path = tmp_path / "all_expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "every-expression", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, output(result)
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_every_metric_an_expression_uses_exists() -> None:
    known = set(series_names()) | recording_rule_names()
    unknown = {f"{e}: {s.name}" for e in all_expressions() for s in selectors(e.expr) if s.name is None or s.name not in known}
    assert not unknown, "metrics that neither the contract nor a recording rule defines:\n" + "\n".join(sorted(unknown))


def test_label_matchers_use_labels_and_values_the_metrics_have() -> None:
    names = series_names()
    problems = []
    for e in all_expressions():
        for s in selectors(e.expr):
            if s.name not in names:
                continue  # recording rules: their labels are checked by promtool tests
            metric, labels = names[s.name]
            for label, op, value in s.matchers:
                if label not in labels:
                    problems.append(f"{e}: {s.name} has no label {label!r}")
                elif label == "job":
                    regex = re.compile(value if op in ("=~", "!~") else re.escape(value))
                    if not any(regex.fullmatch(job) for job in JOBS):
                        problems.append(f"{e}: no job matches {label}{op}{value!r}")
                elif op == "=" and label in metric.values and value not in metric.values[label]:
                    problems.append(f"{e}: {s.name}{{{label}={value!r}}} is not one of {sorted(metric.values[label])}")
    assert not problems, "\n".join(problems)


def test_grouping_labels_exist() -> None:
    known = set(TARGET_LABELS) | {"le", "slo", "quantile"}
    for metric in METRICS.values():
        known |= metric.labels
    unknown = {f"{e}: {label}" for e in all_expressions() for label in grouping_labels(e.expr) if label not in known}
    assert not unknown, "\n".join(sorted(unknown))


def test_the_promql_reader_finds_selectors_and_grouping_labels() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, protocol) (rate(mcp_gateway_request_duration_seconds_bucket{protocol="tcp"}[5m])))'
        ' / ignoring(state) mcp_router_pool_connections{state=~"a|b"} offset 5m and on(job) up'
    )
    found = [(s.name, s.matchers) for s in selectors(expr)]
    assert found == [
        ("mcp_gateway_request_duration_seconds_bucket", (("protocol", "=", "tcp"),)),
        ("mcp_router_pool_connections", (("state", "=~", "a|b"),)),
        ("up", ()),
    ]
    assert grouping_labels(expr) == {"le", "protocol", "state", "job"}


# --- panels whose guide expression was corrected compute what they promise --------------


def _evaluate(tmp_path: Path, series: dict[str, str], cases: list[tuple[str, list[tuple[str, float]]]]) -> None:
    """Run `promtool test rules` with `series` (1m apart) and expect each expression's samples."""
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
                    }
                    for expr, samples in cases
                ],
            }
        ],
    }
    path = tmp_path / "panels_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", path)
    assert result.returncode == 0, output(result)


def _expr(uid: str, title: str, ref: str = "A", **selected: str) -> str:
    """A panel's expression as Grafana runs it: every variable at "All" unless `selected`."""
    (target,) = [t for t in _panel(uid, title)["targets"] if t["refId"] == ref]
    return substitute(target["expr"], all_values(DASHBOARDS[uid]) | selected)


def test_pool_efficiency_panel_is_the_share_of_active_connections(tmp_path: Path) -> None:
    guide = 'mcp_router_pool_connections{state="active"} / mcp_router_pool_connections{state="total"} * 100'
    series = {
        f'mcp_router_pool_connections{{job="mcp-router", instance="router-local", state="{state}"}}': f"{n}x10"
        for state, n in (("active", 3), ("idle", 1), ("total", 4))
    }
    _evaluate(
        tmp_path,
        series,
        [
            (_expr("mcp-gateway", "Connection pool efficiency"), [('{job="mcp-router", instance="router-local"}', 75)]),
            (guide, []),  # the original expression matches no series: the state labels differ
        ],
    )


def test_auth_success_rate_panel_is_the_share_of_successful_attempts(tmp_path: Path) -> None:
    guide = 'rate(mcp_gateway_auth_attempts_total{result="success"}[5m]) / rate(mcp_gateway_auth_attempts_total[5m]) * 100'
    series = {
        'mcp_gateway_auth_attempts_total{instance="a", type="bearer", result="success"}': "0+57x10",
        'mcp_gateway_auth_attempts_total{instance="b", type="bearer", result="failure"}': "0+3x10",
    }
    _evaluate(
        tmp_path,
        series,
        [
            (f"round({_expr('mcp-gateway', 'Authentication success rate')})", [('{type="bearer"}', 95)]),
            # The original expression divides each series by itself: always 100 %.
            (f"round({guide})", [('{instance="a", type="bearer", result="success"}', 100)]),
        ],
    )


def _histogram(labels: str, per_minute: dict[str, int]) -> dict[str, str]:
    return {f'mcp_gateway_request_duration_seconds_bucket{{{labels}, le="{le}"}}': f"0+{n}x10" for le, n in per_minute.items()}


def test_tcp_vs_websocket_panel_is_the_ratio_of_their_p95(tmp_path: Path) -> None:
    common = 'method="tools/call", backend="github-mcp", namespace="github"'
    series = {}
    for instance in ("a", "b"):  # two gateways: buckets must be summed before the quantile
        series |= _histogram(f'instance="{instance}", protocol="tcp", {common}', {"0.025": 50, "0.1": 100, "+Inf": 100})
        series |= _histogram(f'instance="{instance}", protocol="websocket", {common}', {"0.05": 50, "0.2": 100, "+Inf": 100})
    guide = (
        'histogram_quantile(0.95, rate(mcp_gateway_request_duration_seconds_bucket{protocol="tcp"}[5m])) / '
        'histogram_quantile(0.95, rate(mcp_gateway_request_duration_seconds_bucket{protocol="websocket"}[5m]))'
    )
    _evaluate(
        tmp_path,
        series,
        [
            (f"round(100 * ({_expr('mcp-gateway', 'TCP vs WebSocket latency (p95 ratio)')}))", [("{}", 50)]),
            (guide, []),  # protocol labels differ on both sides: no match
        ],
    )


def test_backend_matrix_panel_is_each_backends_p95(tmp_path: Path) -> None:
    series = {}
    for instance in ("a", "b"):
        series |= _histogram(
            f'instance="{instance}", method="tools/call", backend="github-mcp", protocol="http", namespace="github"',
            {"0.1": 90, "0.5": 100, "+Inf": 100},
        )
        series |= _histogram(
            f'instance="{instance}", method="tools/call", backend="jira-mcp", protocol="http", namespace="jira"',
            {"0.1": 50, "1": 100, "+Inf": 100},
        )
    expr = _expr("mcp-gateway", "Backend performance matrix (p95)")
    _evaluate(tmp_path, series, [(f"round(1000 * ({expr}))", [('{backend="github-mcp"}', 300), ('{backend="jira-mcp"}', 910)])])


def test_latency_percentiles_panel_merges_every_instance(tmp_path: Path) -> None:
    series = {}
    for instance, fast in (("a", 100), ("b", 0)):  # a: all fast, b: all slow
        series |= _histogram(
            f'instance="{instance}", method="tools/call", backend="github-mcp", protocol="http", namespace="github"',
            {"0.1": fast, "1": 100, "+Inf": 100},
        )
    p95 = _expr("mcp-gateway", "Latency percentiles", "B")
    # Merged, 50 % of requests are <= 0.1 s; p95 lies at 0.1 + 0.9 * 0.9 = 0.91 s.
    _evaluate(tmp_path, series, [(f"round(1000 * ({p95}))", [("{}", 910)])])


def test_error_budget_panels_leave_the_callers_mistakes_out(tmp_path: Path) -> None:
    """990 answered, 10 failed by the service, 1000 of one caller's typos a minute: 1 % failed."""
    labels = 'method="tools/call", namespace="github"'
    series = {
        f'mcp_gateway_requests_total{{instance="a", status="success", {labels}, user="alice"}}': "0+990x10",
        f'mcp_gateway_requests_total{{instance="b", status="error", {labels}, user="alice"}}': "0+10x10",
        f'mcp_gateway_requests_total{{instance="a", status="client_error", {labels}, user="mallory"}}': "0+1000x10",
    }
    _evaluate(
        tmp_path,
        series,
        [
            (f"round(100 * ({_expr('mcp-gateway', 'Error budget consumption')}))", [("{}", 100)]),
            (f"round(100 * ({_expr('mcp-slo', 'Success rate (5m)')}))", [("{}", 9900)]),
            (
                f"round(1000 * ({_expr('mcp-gateway', 'Errors by namespace and method', 'B')}))",
                [('{namespace="github", method="tools/call"}', 16667)],
            ),
        ],
    )


def test_connection_growth_panel_forecasts_the_total_across_gateways(tmp_path: Path) -> None:
    series = {
        'mcp_gateway_connections_total{instance="a", protocol="websocket", state="active"}': "0+1x10",
        'mcp_gateway_connections_total{instance="b", protocol="http", state="active"}': "0+2x10",
    }
    expr = _expr("mcp-gateway", "Connection growth (30-day forecast)")
    # Together +3 a minute; at 10m there are 30, in 30 days 30 + 3 * 43200 more.
    _evaluate(tmp_path, series, [(f"round({expr})", [("{}", 30 + 3 * 43200)])])


# --- provisioning -------------------------------------------------------------------


def test_grafana_provisions_the_dashboards_from_files() -> None:
    provider = yaml.safe_load((DASHBOARDS_DIR / "provisioning" / "dashboards" / "mcp.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"]
    assert entry["allowUiUpdates"] is False


def test_grafana_datasources_are_prometheus_with_urls_from_the_environment() -> None:
    doc = yaml.safe_load((DASHBOARDS_DIR / "provisioning" / "datasources" / "mcp-prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    sources = doc["datasources"]
    assert sources and all(s["type"] == "prometheus" for s in sources)
    assert sum(1 for s in sources if s.get("isDefault")) == 1
    for source in sources:
        assert re.fullmatch(r"\$\{[A-Z_]+\}", source["url"]), source["url"]
        assert "secureJsonData" not in source and "basicAuthPassword" not in source
