"""Where the configuration comes from: the YAML file (a key given twice is refused with both line
numbers, as YAML would silently keep the last), or the embedded default, then the environment
overrides a container platform sets, then explicit overrides (command-line flags)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.config.checks import ConfigError, Loc, parse_config
from app.config.defaults import demo_namespaces
from app.config.model import GatewayConfig

#: Environment variables that win over the file (the container platform sets these).
ENV_OVERRIDES = {
    "MCP_GATEWAY_REDIS_URL": "redis_url",
    "MCP_GATEWAY_HOST": "host",
    "MCP_GATEWAY_PORT": "port",
    "MCP_GATEWAY_METRICS_PORT": "metrics_port",
    "MCP_GATEWAY_METRICS_HOST": "metrics_host",
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read YAML; an unreadable or malformed file, or one that gives a key twice, is a
    ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    return data if data is not None else {}


def _load_yaml(text: str) -> Any:
    """`yaml.safe_load`, refusing a mapping that gives a key twice (YAML keeps the last silently,
    dropping the first block unchecked): every duplicate, with both line numbers."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(node, (), set()))
        if duplicates:
            raise ConfigError(duplicates)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: Loc, seen_nodes: set[int]) -> Iterator[str]:
    if id(node) in seen_nodes:  # an alias: checked where its anchor is (and no exponential walk)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge" else None
            line = key_node.start_mark.line + 1
            if key is not None and key in first_lines:
                dotted = ".".join(map(str, (*path, key)))
                yield f"{dotted}: duplicate key at line {line} (first at line {first_lines[key]}); give each key once"
            elif key is not None:
                first_lines[key] = line
            yield from _duplicate_keys(value_node, (*path, key if key is not None else "?"), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index), seen_nodes)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> GatewayConfig:
    """File (or the embedded default), then environment, then explicit overrides (CLI flags)."""
    environ = dict(os.environ) if environ is None else environ
    path = path or environ.get("MCP_GATEWAY_CONFIG")
    data = read_config_file(path) if path else {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: top level must be a mapping of keys to values"])
    if not data.get("namespaces") and not path:
        data["namespaces"] = demo_namespaces()
    for var, key in ENV_OVERRIDES.items():
        if environ.get(var):
            data[key] = environ[var]
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return parse_config(data)


def redis_password() -> str | None:
    """The Redis password: from `MCP_GATEWAY_REDIS_PASSWORD` only, never the configuration file
    (a secret in a file ends up in version control and in every copy of it)."""
    return os.environ.get("MCP_GATEWAY_REDIS_PASSWORD") or None
