"""otel/compose.yaml, the local stack, checked without a container engine.

Every file it mounts or builds from exists, every image is pinned, and every port lines up:
what a service publishes or another service targets is what that service really listens on,
read from the same configuration the container gets (the gateway's YAML through the
gateway's own loader, the bridge's command line through the bridge's own parser, the
Collector's configuration, Prometheus's flags). The only ports taken on trust are those of
images that carry their own configuration (`IMAGE_PORTS`). Finally the Compose client
itself validates the file (`docker compose config` or Debian's `docker-compose config`; both
work without a daemon).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import build_parser
from app.config import GatewayConfig, load_config
from app.tcp_bridge.command import add_arguments, build_config
from app.tcp_bridge.config import BridgeConfig
from app.telemetry.setup import exporters_for
from tests.ops.test_dockerfile import parse_dockerfile
from tests.support.ops import (
    COLLECTOR_DIR,
    DASHBOARD_FILES,
    PROMETHEUS_CONFIG,
    REPO,
    RULE_FILES,
    load_distribution,
    promtool,
)
from tests.support.ops.tools import output

COMPOSE_FILE = REPO / "otel" / "compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BASE = COMPOSE_FILE.parent
ANY_ADDRESS = {"0.0.0.0", "::", ""}
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
GRAFANA_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")

#: Images whose configuration is their own, not the repository's: the ports they listen on
#: (on all interfaces), as their documentation and default configuration give them. Jaeger v2:
#: cmd/jaeger/internal/all-in-one.yaml, which binds ${JAEGER_LISTEN_HOST} (set in compose.yaml).
IMAGE_PORTS = {
    "redis": {6379},  # redis.conf default `port 6379`; the official image binds all interfaces
    "oliver006/redis_exporter": {9121},  # --web.listen-address default ":9121"
    "jaegertracing/jaeger": {4317, 4318, 16686},  # OTLP gRPC, OTLP HTTP, UI
    "grafana/grafana": {3000},  # [server] http_port default
}


# -- reading the compose file --------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    port: int
    address: str  # the bind address
    what: str

    @property
    def reachable_from_outside(self) -> bool:
        """Bound to every interface: reachable by other containers and through published ports."""
        return self.address in ANY_ADDRESS


def environment(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def image_name(name: str) -> str:
    return SERVICES[name]["image"].rsplit(":", 1)[0]


def bind_mounts(name: str) -> dict[PurePosixPath, Path]:
    """Container path -> repository path of every bind mount (short syntax `src:dst[:mode]`)."""
    mounts = {}
    for volume in SERVICES[name].get("volumes") or []:
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[PurePosixPath(target)] = (BASE / source).resolve()
    return mounts


def repo_path(name: str, container_path: str) -> Path:
    """Where a file the container reads comes from in the repository."""
    path = PurePosixPath(container_path)
    for target, source in bind_mounts(name).items():
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{name}: {container_path} is not mounted from the repository")


def namespace(name: str) -> str:
    """The service whose network namespace `name` runs in (`network_mode: service:X`)."""
    mode = SERVICES[name].get("network_mode", "")
    return mode.split(":", 1)[1] if mode.startswith("service:") else name


def gateway_image_command(name: str) -> list[str]:
    """The command a service built from the repository's Dockerfile runs (its own, or the image's CMD)."""
    if "command" in SERVICES[name]:
        return list(SERVICES[name]["command"])
    build = SERVICES[name]["build"]
    stages = parse_dockerfile((BASE / build["context"] / build["dockerfile"]).read_text())
    command = stages[-1].all("CMD")[-1].exec_form()
    assert command, "the Dockerfile's CMD is in exec form"
    return command


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def listener_at(address: str, what: str) -> Listener:
    host, port = split_address(address)
    return Listener(port, host, what)


@contextmanager
def process_environment(name: str, prefix: str) -> Iterator[None]:
    """This process's `prefix*` variables replaced by the service's, for code that reads them
    from os.environ (the bridge's argument defaults, the gateway's OTEL_* reading)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith(prefix)]:
            patch.delenv(key)
        for key, value in environment(name).items():
            patch.setenv(key, value)
        yield


def expand_collector_env(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name, default = match.groups()
        assert name in env or default is not None, f"otel-collector: ${{env:{name}}} is not set in compose.yaml"
        return env.get(name, default or "")

    return ENV_REF.sub(value, text)


# -- what each service listens on, read from its configuration ----------------------------------


def gateway_config(name: str = "gateway") -> GatewayConfig:
    args = build_parser().parse_args(gateway_image_command(name))
    assert args.command == "serve", f"{name} runs {args.command!r}"
    env = environment(name)
    path = args.config or env["MCP_GATEWAY_CONFIG"]
    return load_config(repo_path(name, path), {"host": args.host, "port": args.port, "metrics_port": args.metrics_port}, env)


def bridge_config(name: str = "bridge") -> BridgeConfig:
    command = gateway_image_command(name)
    assert command[0] == "bridge", f"{name} runs {command[0]!r}"
    parser = argparse.ArgumentParser()
    with process_environment(name, "MCP_BRIDGE_"):  # the parser takes its defaults from there
        add_arguments(parser)
    return build_config(parser.parse_args(command[1:]))


def collector_config(name: str = "otel-collector") -> dict[str, Any]:
    (flag,) = [arg for arg in SERVICES[name]["command"] if arg.startswith("--config=")]
    text = repo_path(name, flag.split("=", 1)[1]).read_text()
    return yaml.safe_load(expand_collector_env(text, environment(name)))


def prometheus_flags(name: str = "prometheus") -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in SERVICES[name]["command"] if "=" in arg)


def prometheus_config(name: str = "prometheus") -> dict[str, Any]:
    return yaml.safe_load(repo_path(name, prometheus_flags(name)["config.file"]).read_text())


def service_listeners(name: str) -> list[Listener]:
    if "build" in SERVICES[name]:
        if gateway_image_command(name)[0] == "bridge":
            bridge = bridge_config(name)
            return [Listener(bridge.port, bridge.host, "MCPB"), Listener(bridge.metrics_port, bridge.metrics_host, "bridge metrics")]
        gateway = gateway_config(name)
        return [
            Listener(gateway.port, gateway.host, "MCP HTTP"),
            Listener(gateway.metrics_port, gateway.metrics_host or gateway.host, "gateway metrics"),
        ]
    if image_name(name) == "otel/opentelemetry-collector-contrib":
        config = collector_config(name)
        found = [listener_at(p["endpoint"], f"OTLP {kind}") for kind, p in config["receivers"]["otlp"]["protocols"].items()]
        found += [listener_at(e["endpoint"], cid) for cid, e in config["exporters"].items() if cid.startswith("prometheus/")]
        found += [listener_at(e["endpoint"], cid) for cid, e in (config.get("extensions") or {}).items() if "endpoint" in e]
        return found
    if image_name(name) == "prom/prometheus":
        return [listener_at(prometheus_flags(name).get("web.listen-address", "0.0.0.0:9090"), "Prometheus")]
    ports = IMAGE_PORTS.get(image_name(name))
    assert ports, f"{name}: no listening ports known for image {image_name(name)!r}; add it to IMAGE_PORTS"
    if image_name(name) == "jaegertracing/jaeger":
        assert environment(name).get("JAEGER_LISTEN_HOST") == "0.0.0.0", "Jaeger binds localhost unless JAEGER_LISTEN_HOST says otherwise"
    return [Listener(port, "0.0.0.0", image_name(name)) for port in sorted(ports)]


@cache
def listeners(ns: str) -> dict[int, Listener]:
    """Everything listening in one network namespace (a service and its sidecars), by port."""
    found: dict[int, Listener] = {}
    for name in SERVICES:
        if namespace(name) == ns:
            for listener in service_listeners(name):
                assert listener.port not in found, f"{ns}: port {listener.port} taken twice ({found[listener.port].what}, {listener.what})"
                found[listener.port] = listener
    return found


def unreachable(source: str, host: str, port: int) -> str | None:
    """Why `source` cannot reach `host:port`, or None when a service listens there."""
    if host in LOOPBACK_NAMES:
        ns, need_outside = namespace(source), False
    elif host in SERVICES:
        ns, need_outside = namespace(host), True
    else:
        return f"{source}: {host!r} is neither a service nor loopback"
    listener = listeners(ns).get(port)
    if listener is None:
        return f"{source} -> {host}:{port}: nothing listens on {port} in {ns}'s network namespace ({sorted(listeners(ns))})"
    if need_outside and not listener.reachable_from_outside:
        return f"{source} -> {host}:{port}: {listener.what} binds {listener.address}, not reachable from other containers"
    return None


def url_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else f"//{url}")
    assert parts.hostname and parts.port, f"{url!r} names no host and port"
    return parts.hostname, parts.port


# -- files, images, dependencies ---------------------------------------------------------------------


def test_every_service_is_accounted_for() -> None:
    expected = {"gateway", "bridge", "redis", "redis-exporter", "otel-collector", "prometheus", "jaeger", "grafana"}
    assert set(SERVICES) == expected
    for name in SERVICES:
        assert service_listeners(name), name


def test_images_are_pinned_and_the_gateway_builds_from_the_repository() -> None:
    for name, service in SERVICES.items():
        image, _, tag = service["image"].rpartition(":")
        assert image and tag and tag != "latest", f"{name}: {service['image']!r} is not pinned to a version"
        if "build" in service:
            build = service["build"]
            context = (BASE / build["context"]).resolve()
            assert context == REPO, f"{name}: the build context is the repository root"
            assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"
    assert SERVICES["otel-collector"]["image"] == load_distribution().image
    assert {s["image"] for s in SERVICES.values() if "build" in s} == {"mcp-gateway:local"}


def test_every_mounted_file_exists_and_is_read_only() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source, _target, *mode = volume.split(":")
            assert source.startswith("."), f"{name}: {volume!r} is not a file from the repository"
            assert (BASE / source).exists(), f"{name}: {source} does not exist (relative to otel/)"
            assert mode == ["ro"], f"{name}: {volume!r} should be mounted read-only"


def test_dependencies_name_services_and_health_conditions_have_a_health_check() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        for dep, condition in depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends):
            assert dep in SERVICES, f"{name} depends on unknown service {dep!r}"
            if condition.get("condition") == "service_healthy":
                check = SERVICES[dep].get("healthcheck")
                if check is None and "build" in SERVICES[dep]:
                    build = SERVICES[dep]["build"]
                    has_check = bool(parse_dockerfile((BASE / build["context"] / build["dockerfile"]).read_text())[-1].all("HEALTHCHECK"))
                else:
                    has_check = bool(check) and not check.get("disable")
                assert has_check, f"{name} waits for {dep} to be healthy, but {dep} has no health check"
        if namespace(name) != name:
            assert namespace(name) in depends, f"{name} shares {namespace(name)}'s network namespace without depending on it"


# -- ports -------------------------------------------------------------------------------------------


def test_what_each_service_listens_on() -> None:
    # The design's ports, derived from the configurations (not from compose.yaml's comments).
    assert {p: listener.what for p, listener in listeners("gateway").items()} == {
        8080: "MCP HTTP",
        9090: "gateway metrics",
        8445: "MCPB",
        9092: "bridge metrics",
    }
    assert set(listeners("otel-collector")) >= {4317, 4318}
    assert set(listeners("prometheus")) == {9090}
    assert set(listeners("jaeger")) >= {16686, 4317}
    assert set(listeners("grafana")) == {3000}
    assert set(listeners("redis")) == {6379}


def test_published_ports_are_on_loopback_and_reach_a_listener() -> None:
    for name, service in SERVICES.items():
        if namespace(name) != name:
            assert not service.get("ports"), f"{name} shares {namespace(name)}'s network: publish its ports there"
        for spec in service.get("ports") or []:
            assert isinstance(spec, str), f"{name}: use the short syntax HOST_IP:HOST_PORT:CONTAINER_PORT"
            parts = spec.split("/")[0].split(":")
            assert len(parts) == 3 and parts[0] == "127.0.0.1", (
                f"{name}: {spec!r} must bind 127.0.0.1 only (127.0.0.1:HOST_PORT:CONTAINER_PORT)"
            )
            container_port = parts[2]
            listener = listeners(name).get(int(container_port))
            assert listener is not None, f"{name}: publishes {container_port}, where nothing listens ({sorted(listeners(name))})"
            assert listener.reachable_from_outside, f"{name}: publishes {container_port}, but {listener.what} binds {listener.address}"
    published = [spec.split(":")[1] for s in SERVICES.values() for spec in s.get("ports") or []]
    assert len(published) == len(set(published)), f"a host port is published twice: {published}"


def test_the_gateway_and_bridge_are_published_on_the_design_ports() -> None:
    published = {int(spec.split(":")[2]) for spec in SERVICES["gateway"]["ports"]}
    gateway, bridge = gateway_config(), bridge_config()
    assert published == {gateway.port, gateway.metrics_port, bridge.port, bridge.metrics_port} == {8080, 9090, 8445, 9092}


# -- who talks to whom -------------------------------------------------------------------------------


def test_the_bridge_relays_to_the_gateways_http_port_under_an_allowed_host() -> None:
    gateway, bridge = gateway_config(), bridge_config()
    host, port = url_address(bridge.gateway_url)
    assert unreachable("bridge", host, port) is None, unreachable("bridge", host, port)
    assert namespace("bridge") == "gateway" and port == gateway.port, bridge.gateway_url
    assert host in gateway.allowed_hosts, f"the gateway would refuse the bridge's Host {host!r} (allowed_hosts)"


def test_the_gateway_and_redis_exporter_reach_redis() -> None:
    for name, url in (("gateway", gateway_config().redis_url or ""), ("redis-exporter", environment("redis-exporter")["REDIS_ADDR"])):
        assert unreachable(name, *url_address(url)) is None, unreachable(name, *url_address(url))
        assert url_address(url)[0] == "redis", url


@pytest.mark.parametrize("name", ["gateway", "bridge"])
def test_traces_go_to_the_collectors_receiver_and_metrics_only_by_scrape(name: str) -> None:
    env = environment(name)
    host, port = url_address(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == "otel-collector" and unreachable(name, host, port) is None, unreachable(name, host, port)
    protocol = {"grpc": "grpc", "http/protobuf": "http"}[env["OTEL_EXPORTER_OTLP_PROTOCOL"]]
    receiver = collector_config()["receivers"]["otlp"]["protocols"][protocol]
    assert split_address(receiver["endpoint"])[1] == port, (
        f"{name} speaks {protocol} to {port}, the {protocol} receiver is {receiver['endpoint']}"
    )
    with process_environment(name, "OTEL_"):  # read as the process reads it (app.telemetry.setup)
        assert exporters_for("traces") == ["otlp"]
        # Prometheus scrapes this process: OTLP metrics too would store every series twice.
        assert exporters_for("metrics") == [], f"{name}: metrics go by scrape only"


def test_the_collector_sends_traces_to_jaeger_and_serves_metrics_to_prometheus() -> None:
    config = collector_config()
    for cid, exporter in config["exporters"].items():
        host, port = split_address(exporter["endpoint"])
        if cid.startswith("otlp_grpc/"):
            assert unreachable("otel-collector", host, port) is None, unreachable("otel-collector", host, port)
            assert host == "jaeger" and port == 4317, f"{cid}: Jaeger's OTLP/gRPC port"
        else:
            assert cid.startswith("prometheus/"), cid
            assert port in listeners("otel-collector")
            scraped = {t for job in prometheus_config()["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
            assert f"otel-collector:{port}" in scraped, f"nothing scrapes the Collector's {cid} on {port}"


def test_the_collector_runs_the_local_config_checked_with_the_others() -> None:
    # tests/ops/test_ops_collector.py checks local.yaml structurally, as region.yaml and federation.yaml.
    (flag,) = SERVICES["otel-collector"]["command"]
    local = COLLECTOR_DIR / "local.yaml"
    assert repo_path("otel-collector", flag.removeprefix("--config=")) == local
    assert local in load_distribution().configs


def test_prometheus_scrapes_services_on_their_ports_with_the_main_configs_jobs() -> None:
    config = prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    main_jobs = {job["job_name"] for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    # Left out: the router (on the host, /metrics on loopback); added: the Collector's exporter.
    assert set(jobs) == main_jobs - {"mcp-router"} | {"otel-collector"}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    for job, addresses in targets.items():
        assert addresses, job
        for address in addresses:
            problem = unreachable("prometheus", *split_address(address))
            assert problem is None, f"job {job}: {problem}"
    what = {
        job: {listeners(namespace(split_address(a)[0]))[split_address(a)[1]].what for a in addresses} for job, addresses in targets.items()
    }
    assert what["mcp-gateway"] == {"gateway metrics"} and what["mcp-bridge"] == {"bridge metrics"}
    assert what["redis"] == {"oliver006/redis_exporter"} and what["otel-collector"] == {"prometheus/local"}
    assert prometheus_config()["global"]["external_labels"] == {"region": "${MCP_REGION}"}
    assert "expand-external-labels" in prometheus_flags()["enable-feature"] and environment("prometheus")["MCP_REGION"]


def test_prometheus_loads_the_repositorys_rules_in_the_container_and_in_promtool() -> None:
    # Relative rule paths resolve against the configuration file's directory.
    config_path = prometheus_flags()["config.file"]
    (pattern,) = prometheus_config()["rule_files"]
    in_container = PurePosixPath(posixpath.normpath(PurePosixPath(config_path).parent / pattern))
    assert sorted(repo_path("prometheus", str(in_container.parent)).glob(in_container.name)) == RULE_FILES
    result = promtool("check", "config", repo_path("prometheus", config_path))  # the same resolution in the repository
    assert result.returncode == 0 and f"{len(RULE_FILES)} rule files found" in result.stdout, output(result)


def test_grafana_reads_the_provisioning_and_its_data_sources_point_at_prometheus() -> None:
    env = environment("grafana")
    datasources = yaml.safe_load(repo_path("grafana", "/etc/grafana/provisioning/datasources/mcp-prometheus.yaml").read_text())
    for source in datasources["datasources"]:
        url = GRAFANA_REF.sub(lambda m: env[m.group(1)] if m.group(1) in env else m.group(0), source["url"])
        assert "$" not in url, f"data source {source['name']!r}: {source['url']} is not set in grafana's environment"
        host, port = url_address(url)
        problem = unreachable("grafana", host, port) or (None if host == "prometheus" else "not the prometheus service")
        assert problem is None, f"data source {source['name']!r} ({url}): {problem}"
    (provider,) = yaml.safe_load(repo_path("grafana", "/etc/grafana/provisioning/dashboards/mcp.yaml").read_text())["providers"]
    dashboards = repo_path("grafana", provider["options"]["path"])
    assert sorted(dashboards.glob("*.json")) == DASHBOARD_FILES


# -- the Compose client ------------------------------------------------------------------------------


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_the_compose_client_accepts_the_file() -> None:
    client = _compose_client()
    assert client is not None, (
        "neither the `docker compose` plugin nor `docker-compose` is installed, so compose.yaml was not "
        "validated by a Compose client (scripts/test installs Debian's docker-compose); the structural "
        "checks above ran regardless"
    )
    result = subprocess.run([*client, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(client)} config: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
