"""Structural checks of an OpenTelemetry Collector configuration.

No Collector binary can run on the build machines, so the configs are checked against
what a Collector would check at start-up (every component a pipeline names is defined,
every component type exists in the distribution) and against our own rules: the pinned
distribution's current (2026) component names, `memory_limiter` first and `batch` last,
nothing unused, endpoints and credentials only from `${env:...}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .paths import COLLECTOR_DIR

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
SIGNALS = ("traces", "metrics", "logs", "profiles")

# Keys whose value is a credential: it must come from the environment or a file.
SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api_?key|access_?key|credential|authorization|auth_header|private_key)$",
    re.IGNORECASE,
)
# A whole value that is one reference to the environment or a file.
ENV_OR_FILE = re.compile(r"^\$\{(env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?|file:[^}]+)\}$")
# Any ${...} reference inside a value, and the forms the pinned Collector resolves.
REFERENCE = re.compile(r"\$\{([^}]*)\}")
VALID_REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?|file:.+|[a-z0-9]+:.+)$")
# Literal credentials that must never appear anywhere in a config.
LITERAL_SECRET = re.compile(
    r"(AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|\bBearer\s+[A-Za-z0-9._~+/=-]{8,}|"
    r"xox[baprs]-[A-Za-z0-9-]+|https://hooks\.slack\.com/services/\S+)"
)


@dataclass(frozen=True)
class CollectorDistribution:
    """The pinned Collector distribution and the component types it contains."""

    distribution: str
    version: str
    image: str
    components: dict[str, frozenset[str]]  # kind -> types
    deprecated_aliases: dict[str, dict[str, str]]  # kind -> {old: new}
    providers: frozenset[str]
    configs: tuple[Path, ...]


def load_distribution(directory: Path = COLLECTOR_DIR) -> CollectorDistribution:
    pin = yaml.safe_load((directory / "distribution.yaml").read_text())
    comp = yaml.safe_load((directory / pin["components"]).read_text())
    if (comp["distribution"], str(comp["version"])) != (pin["distribution"], str(pin["version"])):
        raise ValueError(
            f"{pin['components']} lists {comp['distribution']} {comp['version']}, "
            f"but distribution.yaml pins {pin['distribution']} {pin['version']}"
        )
    return CollectorDistribution(
        distribution=pin["distribution"],
        version=str(pin["version"]),
        image=pin["image"],
        components={kind: frozenset(comp.get(kind, [])) for kind in KINDS},
        deprecated_aliases={kind: dict(comp.get("deprecated_aliases", {}).get(kind, {})) for kind in KINDS},
        providers=frozenset(comp.get("providers", [])),
        configs=tuple(directory / name for name in pin["configs"]),
    )


def component_type(component_id: str) -> str:
    """`otlp_grpc/jaeger` -> `otlp_grpc`."""
    return component_id.split("/", 1)[0]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every mapping entry and list item, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key), value
            yield from _walk(value, sub)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            sub = f"{path}[{index}]"
            yield sub, "", value
            yield from _walk(value, sub)


def pipelines(config: dict) -> dict[str, dict]:
    return (config.get("service") or {}).get("pipelines") or {}


def check_collector_config(config: dict, dist: CollectorDistribution) -> list[str]:
    """Every problem found in `config` (empty when it is sound)."""
    problems: list[str] = []
    defined = {kind: dict(config.get(kind) or {}) for kind in KINDS}
    service = config.get("service") or {}

    # Component types exist in the pinned distribution, under their current names.
    for kind in KINDS:
        for cid in defined[kind]:
            ctype = component_type(cid)
            new_name = dist.deprecated_aliases[kind].get(ctype)
            if new_name:
                problems.append(f"{kind}.{cid}: {ctype!r} is a deprecated alias; use {new_name!r}")
            elif ctype not in dist.components[kind]:
                problems.append(f"{kind}.{cid}: no {kind[:-1]} {ctype!r} in {dist.distribution} {dist.version}")

    # Pipelines: defined components, memory_limiter first, batch last.
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    if not pipelines(config):
        problems.append("service.pipelines: no pipeline")
    for name, pipe in pipelines(config).items():
        if component_type(name) not in SIGNALS:
            problems.append(f"pipeline {name}: unknown signal {component_type(name)!r}")
        for kind in ("receivers", "processors", "exporters"):
            for cid in pipe.get(kind) or []:
                used[kind].add(cid)
                if cid in defined[kind]:
                    continue
                if kind != "processors" and cid in defined["connectors"]:
                    used["connectors"].add(cid)
                    continue
                problems.append(f"pipeline {name}: {kind[:-1]} {cid!r} is not defined")
        if not pipe.get("receivers"):
            problems.append(f"pipeline {name}: no receiver")
        if not pipe.get("exporters"):
            problems.append(f"pipeline {name}: no exporter")
        procs = [component_type(p) for p in pipe.get("processors") or []]
        if not procs or procs[0] != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter must be the first processor (got {procs})")
        if "batch" in procs and procs[-1] != "batch":
            problems.append(f"pipeline {name}: batch must be the last processor (got {procs})")

    # Nothing defined and left unused.
    for kind in ("receivers", "processors", "exporters", "connectors"):
        for cid in defined[kind]:
            if cid not in used[kind]:
                problems.append(f"{kind}.{cid} is defined but no pipeline uses it")
    enabled = list(service.get("extensions") or [])
    for cid in enabled:
        if cid not in defined["extensions"]:
            problems.append(f"service.extensions: {cid!r} is not defined")
    for cid in defined["extensions"]:
        if cid not in enabled:
            problems.append(f"extensions.{cid} is defined but not enabled in service.extensions")

    # Authenticators name enabled extensions.
    for path, key, value in _walk(config):
        if key == "authenticator" and value not in enabled:
            problems.append(f"{path}: authenticator {value!r} is not an enabled extension")

    # References, endpoints and secrets.
    for path, key, value in _walk(config):
        if not isinstance(value, str):
            if key and SECRET_KEY.search(key) and value is not None and not isinstance(value, (dict, list)):
                problems.append(f"{path}: a credential must come from ${{env:...}} or ${{file:...}}")
            continue
        for ref in REFERENCE.findall(value):
            if not VALID_REFERENCE.match(ref):
                problems.append(f"{path}: ${{{ref}}} is not a ${{env:NAME}} / ${{file:...}} reference")
            elif ":" in ref and ref.split(":", 1)[0] not in dist.providers:
                problems.append(f"{path}: no config provider {ref.split(':', 1)[0]!r} in the distribution")
        if re.search(r"(?<!\$)\$[A-Za-z_]", value.replace("$$", "")):
            problems.append(f"{path}: bare $VAR is not expanded by the Collector; use ${{env:VAR}}")
        if LITERAL_SECRET.search(value):
            problems.append(f"{path}: looks like a literal credential")
        if key and SECRET_KEY.search(key) and not ENV_OR_FILE.match(value):
            problems.append(f"{path}: a credential must come from ${{env:...}} or ${{file:...}}")
    for cid, settings in defined["exporters"].items():
        settings = settings or {}
        for key in ("endpoint", "endpoints"):
            values = settings.get(key)
            for value in values if isinstance(values, list) else [values] if values else []:
                if not (isinstance(value, str) and ENV_OR_FILE.match(value)):
                    problems.append(f"exporters.{cid}.{key}: endpoints come from ${{env:...}} (got {value!r})")
    return problems


def load_config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
