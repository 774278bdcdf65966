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

from tests.ops_support import COLLECTOR_DIR, check_collector_config, load_distribution
from tests.ops_support.collector import component_type, load_config, pipelines

DIST = load_distribution()
REGION = load_config(COLLECTOR_DIR / "region.yaml")
FEDERATION = load_config(COLLECTOR_DIR / "federation.yaml")
CONFIGS = {"region": REGION, "federation": FEDERATION}
ENV_REF = re.compile(r"^\$\{env:([A-Z][A-Z0-9_]*)(:-[^}]*)?\}$")


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
    assert [p.name for p in DIST.configs] == ["region.yaml", "federation.yaml"]
    for path in DIST.configs:
        assert f"{DIST.distribution} v{DIST.version}" in path.read_text().splitlines()[0]


def test_component_list_is_the_2026_naming() -> None:
    # The renames an operator trips over when copying older examples.
    assert {"otlp_grpc", "otlp_http", "prometheus_remote_write", "elasticsearch"} <= DIST.components["exporters"]
    assert {"memory_limiter", "batch", "resource", "resource_detection", "tail_sampling", "attributes"} <= DIST.components[
        "processors"
    ]
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
    for cid, cfg in config["exporters"].items():
        endpoints = cfg.get("endpoints") or [cfg.get("endpoint")]
        for endpoint in endpoints:
            _env_name(endpoint)
    for cid, cfg in _of_type(config, "extensions", "basicauth").items():
        _env_name(cfg["client_auth"]["username"])
        _env_name(cfg["client_auth"]["password"])
    for cid, cfg in _of_type(config, "extensions", "bearertokenauth").items():
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
    c["service"]["pipelines"]["traces"]["processors"] = ["batch", "memory_limiter", "resource_detection", "resource/region", "tail_sampling"]


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
    for pipe in pipelines(REGION).values():
        assert pipe["receivers"] == ["otlp"]


def test_region_stamps_region_and_environment_on_every_signal_after_resource_detection() -> None:
    (cid, resource), = _of_type(REGION, "processors", "resource").items()
    stamped = {a["key"]: a for a in resource["attributes"]}
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
    metrics = pipelines(REGION)["metrics"]["processors"]
    (cid, attrs), = _of_type(REGION, "processors", "attributes").items()
    assert cid in metrics
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
    (cid, prw), = _of_type(REGION, "exporters", "prometheus_remote_write").items()
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
    assert set(pipelines(REGION)) == {"traces", "metrics", "logs"}
    # The token the region sends is the one the federation expects.
    region_token = REGION["extensions"][REGION["exporters"][forward]["auth"]["authenticator"]]["token"]
    server_auth = FEDERATION["receivers"]["otlp"]["protocols"]["grpc"]["auth"]["authenticator"]
    assert FEDERATION["extensions"][server_auth]["token"] == region_token


# --- the federation collector --------------------------------------------------------


def test_federation_receives_every_region_with_authentication() -> None:
    for protocol in ("grpc", "http"):
        auth = FEDERATION["receivers"]["otlp"]["protocols"][protocol]["auth"]["authenticator"]
        assert auth in FEDERATION["service"]["extensions"]
    assert set(pipelines(FEDERATION)) == {"traces", "metrics", "logs"}


def test_federation_writes_the_global_prometheus_and_central_jaeger() -> None:
    (cid, prw), = _of_type(FEDERATION, "exporters", "prometheus_remote_write").items()
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
    for cid, prw in _of_type(FEDERATION, "exporters", "prometheus_remote_write").items():
        assert "external_labels" not in prw  # one value for all regions would erase them
