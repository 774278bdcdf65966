"""The OpenTelemetry Collector configs (otel/collector/), checked structurally.

No Collector binary can run here, so the checks are what a Collector would refuse at
start-up plus what operators rely on: the pinned distribution's component names, the
order of processors, where each signal goes, that regions stay apart by `region`, and
that endpoints and credentials only come from the environment.
"""

from __future__ import annotations

import copy
import re

import pytest

from tests.support.ops import (
    COLLECTOR_DIR,
    PROMETHEUS_CONFIG,
    Selector,
    all_expressions,
    check_collector_config,
    load_distribution,
    selectors,
)
from tests.support.ops.collector import component_type, load_config, pipelines

DIST = load_distribution()
REGION = load_config(COLLECTOR_DIR / "region.yaml")
FEDERATION = load_config(COLLECTOR_DIR / "federation.yaml")
LOCAL = load_config(COLLECTOR_DIR / "local.yaml")
CONFIGS = {"region": REGION, "federation": FEDERATION, "local": LOCAL}
ENV_REF = re.compile(r"^\$\{env:([A-Z][A-Z0-9_]*)(:-[^}]*)?\}$")
#: The region's pipeline for what it scrapes itself (the gateway's and the bridge's `up`).
SCRAPE_PIPELINE = "metrics/targets"


def _of_type(config: dict, kind: str, ctype: str) -> dict[str, dict]:
    return {cid: (cfg or {}) for cid, cfg in (config.get(kind) or {}).items() if component_type(cid) == ctype}


def _env_name(value: str) -> str:
    match = ENV_REF.match(value)
    assert match, f"{value!r} is not ${{env:NAME}}"
    return match.group(1)


# --- the pinned distribution -------------------------------------------------------


def test_one_distribution_and_version_is_pinned_everywhere() -> None:
    assert DIST.distribution in {"otelcol-contrib", "aws-otel-collector"}
    assert DIST.image.endswith(f":{DIST.version}")
    assert [p.name for p in DIST.configs] == ["region.yaml", "federation.yaml", "local.yaml"]
    for path in DIST.configs:
        assert f"{DIST.distribution} v{DIST.version}" in path.read_text().splitlines()[0]


def test_component_list_is_the_2026_naming() -> None:
    # The renames an operator trips over when copying older examples.
    assert {"otlp_grpc", "otlp_http", "prometheus_remote_write", "elasticsearch"} <= DIST.components["exporters"]
    assert {"memory_limiter", "batch", "resource", "resource_detection", "tail_sampling", "attributes"} <= DIST.components["processors"]
    assert {"sigv4auth", "basicauth", "bearertokenauth", "health_check"} <= DIST.components["extensions"]
    assert DIST.deprecated_aliases["exporters"]["otlp"] == "otlp_grpc"
    assert DIST.deprecated_aliases["exporters"]["prometheusremotewrite"] == "prometheus_remote_write"
    assert DIST.deprecated_aliases["processors"]["resourcedetection"] == "resource_detection"
    assert "jaeger" not in DIST.components["exporters"]  # Jaeger takes OTLP
    assert "env" in DIST.providers


# --- structure ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_is_structurally_sound(name: str) -> None:
    assert check_collector_config(CONFIGS[name], DIST) == []


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_pipeline_starts_with_memory_limiter_and_ends_with_batch(name: str) -> None:
    for pipe_name, pipe in pipelines(CONFIGS[name]).items():
        procs = [component_type(p) for p in pipe["processors"]]
        assert procs[0] == "memory_limiter", pipe_name
        assert procs[-1] == "batch", pipe_name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_exporter_is_used_by_a_pipeline(name: str) -> None:
    config = CONFIGS[name]
    used = {e for pipe in pipelines(config).values() for e in pipe["exporters"]}
    assert set(config["exporters"]) == used


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_endpoints_and_credentials_come_from_the_environment(name: str) -> None:
    config = CONFIGS[name]
    for _cid, cfg in config["exporters"].items():
        endpoints = cfg.get("endpoints") or [cfg.get("endpoint")]
        for endpoint in endpoints:
            _env_name(endpoint)
    for _cid, cfg in _of_type(config, "extensions", "basicauth").items():
        _env_name(cfg["client_auth"]["username"])
        _env_name(cfg["client_auth"]["password"])
    for _cid, cfg in _of_type(config, "extensions", "bearertokenauth").items():
        _env_name(cfg["token"])
    text = (COLLECTOR_DIR / f"{name}.yaml").read_text()
    assert "${env:" in text
    assert not re.search(r"\$\{(?!env:|file:)", text), "only ${env:...} / ${file:...} references"


# The checker itself: each broken config must be refused, with a useful message.
def _mutate_region(change) -> dict:
    config = copy.deepcopy(REGION)
    change(config)
    return config


def _batch_first(c: dict) -> None:
    c["service"]["pipelines"]["traces"]["processors"] = [
        "batch",
        "memory_limiter",
        "resource_detection",
        "resource/region",
        "tail_sampling",
    ]


def _deprecated_name(c: dict) -> None:
    c["exporters"]["otlp/jaeger"] = c["exporters"].pop("otlp_grpc/jaeger")
    c["service"]["pipelines"]["traces"]["exporters"][0] = "otlp/jaeger"


def _undefined(c: dict) -> None:
    c["service"]["pipelines"]["logs"]["exporters"].append("debug")


def _unused(c: dict) -> None:
    c["exporters"]["debug"] = {}


def _literal_password(c: dict) -> None:
    c["extensions"]["basicauth/logs"]["client_auth"]["password"] = "changeme"


def _literal_endpoint(c: dict) -> None:
    c["exporters"]["otlp_grpc/jaeger"]["endpoint"] = "jaeger-collector.monitoring:4317"


def _old_env_syntax(c: dict) -> None:
    c["exporters"]["prometheus_remote_write/amp"]["endpoint"] = "${AMP_REMOTE_WRITE_URL}"


def _removed_component(c: dict) -> None:
    c["exporters"]["jaeger"] = {"endpoint": "${env:JAEGER_ENDPOINT}"}
    c["service"]["pipelines"]["traces"]["exporters"].append("jaeger")


def _extension_not_enabled(c: dict) -> None:
    c["service"]["extensions"].remove("sigv4auth/amp")


def _no_memory_limiter(c: dict) -> None:
    c["service"]["pipelines"]["metrics"]["processors"].remove("memory_limiter")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_batch_first, "memory_limiter must be the first processor"),
        (_no_memory_limiter, "memory_limiter must be the first processor"),
        (_deprecated_name, "'otlp' is a deprecated alias; use 'otlp_grpc'"),
        (_undefined, "exporter 'debug' is not defined"),
        (_unused, "exporters.debug is defined but no pipeline uses it"),
        (_literal_password, "a credential must come from"),
        (_literal_endpoint, "endpoints come from ${env:...}"),
        (_old_env_syntax, "is not a ${env:NAME}"),
        (_removed_component, "no exporter 'jaeger' in otelcol-contrib"),
        (_extension_not_enabled, "is not an enabled extension"),
    ],
)
def test_structural_check_refuses_broken_configs(change, message: str) -> None:
    problems = check_collector_config(_mutate_region(change), DIST)
    assert any(message in p for p in problems), problems


# --- the regional collector ----------------------------------------------------------


def test_region_receives_otlp_over_grpc_4317_and_http_4318() -> None:
    protocols = REGION["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    for name, pipe in pipelines(REGION).items():
        assert pipe["receivers"] == (["prometheus/targets"] if name == SCRAPE_PIPELINE else ["otlp"]), name


def test_region_stamps_region_and_environment_on_every_signal_after_resource_detection() -> None:
    cid = "resource/region"
    stamped = {a["key"]: a for a in REGION["processors"][cid]["attributes"]}
    assert set(stamped) == {"region", "deployment.environment"}
    for attr in stamped.values():
        assert attr["action"] == "upsert"
        _env_name(attr["value"])
    for name, pipe in pipelines(REGION).items():
        procs = pipe["processors"]
        assert procs.index("resource_detection") < procs.index(cid), name


def test_region_metrics_carry_region_as_a_label() -> None:
    # Remote write only turns resource attributes into target_info, so the metrics
    # pipeline also puts `region` on each data point (the label rules group by).
    ((cid, attrs),) = _of_type(REGION, "processors", "attributes").items()
    for name in ("metrics", SCRAPE_PIPELINE):
        assert cid in pipelines(REGION)[name]["processors"], name
    assert [(a["key"], a["action"]) for a in attrs["actions"]] == [("region", "upsert")]
    assert attrs["actions"][0]["value"] == REGION["processors"]["resource/region"]["attributes"][0]["value"]


def test_region_keeps_every_error_and_slow_trace_and_samples_the_rest() -> None:
    sampling = REGION["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in sampling["policies"]}
    assert set(policies) == {"status_code", "latency", "probabilistic"}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == "${env:TRACE_SLOW_THRESHOLD_MS:-500}"
    assert "sampling_percentage" in policies["probabilistic"]["probabilistic"]
    # Sampling applies to traces only, before batching.
    for name, pipe in pipelines(REGION).items():
        assert ("tail_sampling" in pipe["processors"]) == (name == "traces")
    traces = pipelines(REGION)["traces"]["processors"]
    assert traces.index("tail_sampling") == len(traces) - 2


def test_region_sends_metrics_to_managed_prometheus_with_sigv4() -> None:
    exporters = pipelines(REGION)["metrics"]["exporters"]
    ((cid, prw),) = _of_type(REGION, "exporters", "prometheus_remote_write").items()
    assert cid in exporters
    authenticator = prw["auth"]["authenticator"]
    assert component_type(authenticator) == "sigv4auth"
    assert REGION["extensions"][authenticator]["service"] == "aps"


def test_region_sends_traces_to_jaeger_over_otlp_and_logs_to_elasticsearch() -> None:
    assert "otlp_grpc/jaeger" in pipelines(REGION)["traces"]["exporters"]
    assert [e for e in pipelines(REGION)["logs"]["exporters"] if component_type(e) == "elasticsearch"]


def test_region_forwards_every_signal_to_the_federation_collector() -> None:
    forward = "otlp_grpc/federation"
    for name, pipe in pipelines(REGION).items():
        assert forward in pipe["exporters"], name
    assert set(pipelines(REGION)) == {"traces", "metrics", SCRAPE_PIPELINE, "logs"}
    # The token the region sends is the one the federation expects.
    region_token = REGION["extensions"][REGION["exporters"][forward]["auth"]["authenticator"]]["token"]
    server_auth = FEDERATION["receivers"]["otlp"]["protocols"]["grpc"]["auth"]["authenticator"]
    assert FEDERATION["extensions"][server_auth]["token"] == region_token


def _scrape_jobs() -> dict[str, dict]:
    """The region's own scrape configurations, by job name."""
    (receiver,) = _of_type(REGION, "receivers", "prometheus").values()
    return {job["job_name"]: job for job in receiver["config"]["scrape_configs"]}


def _matches(selector: Selector, label: str, value: str) -> bool:
    """Whether `selector`'s matchers on `label` accept `value` (PromQL regexes are anchored)."""
    for name, op, expected in selector.matchers:
        if name == label:
            hit = value == expected if op in ("=", "!=") else re.fullmatch(expected, value) is not None
            if hit == (op in ("!=", "!~")):
                return False
    return True


def _job_selectors() -> list[tuple[str, Selector]]:
    """Every selector of the rules and dashboards that names a `job`, with where it is."""
    return [(str(e), s) for e in all_expressions() for s in selectors(e.expr) if any(m[0] == "job" for m in s.matchers)]


def test_region_scrapes_the_jobs_the_gateway_down_alert_and_dashboards_select() -> None:
    # On the managed path nothing else scrapes :9090 and :9092, and `up` exists only
    # where something scrapes: without these jobs MCPGatewayDown could never fire.
    jobs = _scrape_jobs()
    main = {job["job_name"] for job in load_config(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert set(jobs) == {"mcp-gateway", "mcp-bridge"} and set(jobs) <= main
    up = [(where, s) for where, s in _job_selectors() if s.name == "up"]
    assert any("alert MCPGatewayDown" in where and s.matchers == (("job", "=", "mcp-gateway"),) for where, s in up)
    for where, selector in up:
        selected = {job for job in jobs if _matches(selector, "job", job)}
        assert selected, f"{where}: no scraped job has `up` for {selector}"
    assert {job for job in jobs if any(_matches(s, "job", job) for _, s in up)} == set(jobs)


def test_region_scrape_keeps_only_series_that_are_selected_by_job() -> None:
    # Everything else arrives by OTLP (job `mcp/mcp-gateway`): a second copy from the
    # scrape would double every sum. Kept: what expressions select by the scrape's job
    # names (`up` is the scrape's own and no relabelling drops it).
    jobs = _scrape_jobs()
    for name, job in jobs.items():
        (keep,) = job["metric_relabel_configs"]
        assert (keep["source_labels"], keep["action"]) == (["__name__"], "keep"), name
        kept = re.compile(keep["regex"])
        by_job = {s.name for _, s in _job_selectors() if s.name and _matches(s, "job", name)}
        assert set(keep["regex"].split("|")) == by_job - {"up"}, name
        for where, selector in ((str(e), s) for e in all_expressions() for s in selectors(e.expr)):
            if selector.name and kept.fullmatch(selector.name):
                assert any(m[0] == "job" for m in selector.matchers), f"{where}: {selector.name} without a job would count it twice"
        (target,) = job["static_configs"][0]["targets"]
        _env_name(target)


def test_region_scraped_series_keep_their_job_and_one_instance_per_task() -> None:
    pipe = pipelines(REGION)[SCRAPE_PIPELINE]
    assert pipe["exporters"] == pipelines(REGION)["metrics"]["exporters"]
    procs = pipe["processors"]
    attributes = {a["key"]: a for a in REGION["processors"]["resource/targets"]["attributes"]}
    # remote write: job = [service.namespace/]service.name, instance = service.instance.id
    assert attributes["service.namespace"]["action"] == "delete"
    assert (attributes["service.instance.id"]["from_attribute"], attributes["service.instance.id"]["action"]) == (
        "aws.ecs.task.id",
        "upsert",
    )
    assert "ecs" in REGION["processors"]["resource_detection"]["detectors"]
    assert procs.index("resource_detection") < procs.index("resource/targets")
    for cid in pipelines(REGION)["metrics"]["exporters"]:
        assert "resource_to_telemetry_conversion" not in REGION["exporters"][cid], cid


# --- the federation collector --------------------------------------------------------


def test_federation_receives_every_region_with_authentication() -> None:
    for protocol in ("grpc", "http"):
        auth = FEDERATION["receivers"]["otlp"]["protocols"][protocol]["auth"]["authenticator"]
        assert auth in FEDERATION["service"]["extensions"]
    assert set(pipelines(FEDERATION)) == {"traces", "metrics", "logs"}


def test_federation_writes_the_global_prometheus_and_central_jaeger() -> None:
    ((cid, prw),) = _of_type(FEDERATION, "exporters", "prometheus_remote_write").items()
    assert pipelines(FEDERATION)["metrics"]["exporters"] == [cid]
    assert component_type(prw["auth"]["authenticator"]) == "sigv4auth"
    assert _env_name(prw["endpoint"]) == "AMP_GLOBAL_REMOTE_WRITE_URL"
    (jaeger,) = pipelines(FEDERATION)["traces"]["exporters"]
    assert component_type(jaeger) == "otlp_grpc"


def test_federation_keeps_regions_apart() -> None:
    # Nothing at the centre rewrites, drops or re-samples what the regions stamped.
    for pipe in pipelines(FEDERATION).values():
        assert [component_type(p) for p in pipe["processors"]] == ["memory_limiter", "batch"]
    assert "region" not in str(FEDERATION.get("processors"))
    for _cid, prw in _of_type(FEDERATION, "exporters", "prometheus_remote_write").items():
        assert "external_labels" not in prw  # one value for all regions would erase them
