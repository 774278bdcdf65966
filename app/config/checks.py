"""Validation that lists every problem at once: field errors with their key paths (and the
closest known key for an unknown one) and cross-field problems together, one per line, so
`mcp-gateway check-config` and `serve` report them all instead of failing on the first."""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.config.model import NAME_PATTERN, GatewayConfig, is_loopback


class ConfigError(Exception):
    """A configuration that cannot run; `problems` holds one 'key: message' line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


Loc = tuple[str | int, ...]


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(err["loc"])
        lines.append(f"{key}: {message}")
    return lines


def _did_you_mean(loc: Loc) -> str:
    """`; did you mean 'x'?` when an unknown key is close to a key of its section."""
    close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _keys_at(loc: Loc) -> list[str]:
    """The keys the model accepts at `loc` (a mapping's path), or none when it is not a model."""
    current: Any = GatewayConfig
    for part in loc:
        current = _inner(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return []
    current = _inner(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _inner(annotation: Any) -> Any:
    """The model, dict or list inside an optional or annotated type (what a path can descend)."""
    if get_origin(annotation) is Annotated:
        return _inner(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in map(_inner, get_args(annotation)):
            if get_origin(arg) in (dict, list) or (isinstance(arg, type) and issubclass(arg, BaseModel)):
                return arg
    return annotation


# -- cross-field checks -----------------------------------------------------------------------------
# They read the raw document, each only where the keys it needs passed field validation, so a
# field error elsewhere never hides them (a model validator would run only once every field is valid).


class _Document:
    """The decoded file with the locations of its field errors: what a check may trust."""

    def __init__(self, data: dict[str, Any], errors: list[Loc]):
        self.data = data
        self.errors = errors

    def valid(self, *paths: Loc) -> bool:
        """No field error at, inside or above any of `paths`."""
        return not any(loc[: len(path)] == path or path[: len(loc)] == loc for loc in self.errors for path in paths)

    def field(self, name: str) -> Any:
        """A valid top-level field's value as the model holds it (defaults and coercion applied)."""
        info = GatewayConfig.model_fields[name]
        if name not in self.data:
            return info.get_default(call_default_factory=True)
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        return TypeAdapter(annotation).validate_python(self.data[name])

    def mapping(self, *path: str) -> dict[Any, Any]:
        """The mapping at `path`, or an empty one when something else is there."""
        value: Any = self.data
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value if isinstance(value, dict) else {}

    def backend_names(self) -> Iterator[tuple[str, str]]:
        """(namespace, backend name) of every backend that has a name."""
        for ns_name, ns in self.mapping("namespaces").items():
            backends = ns.get("backends") if isinstance(ns, dict) else None
            for backend in backends if isinstance(backends, list) else []:
                if isinstance(backend, dict) and isinstance(backend.get("name"), str):
                    yield str(ns_name), backend["name"]


def _no_anonymous_network(doc: _Document) -> list[str]:
    if not doc.valid(("auth",), ("host",)):
        return []
    host = doc.field("host")
    if doc.field("auth").modes == {"none"} and not is_loopback(host):
        return [f"auth.mode: 'none' is only allowed when the gateway binds a loopback address, not {host!r}; configure jwt or api_key"]
    return []


def _metrics_port_apart(doc: _Document) -> list[str]:
    if not doc.valid(("port",), ("metrics_port",)):
        return []
    port, metrics_port = doc.field("port"), doc.field("metrics_port")
    if metrics_port and metrics_port == port:
        return [f"metrics_port: {metrics_port} is also the gateway's port; use another one (or 0 to turn metrics off)"]
    return []


def _rate_limited_namespaces(doc: _Document) -> list[str]:
    if not isinstance(doc.data.get("namespaces"), dict):
        return []
    unknown = sorted(set(map(str, doc.mapping("rate_limits", "namespaces"))) - set(map(str, doc.mapping("namespaces"))))
    return [f"rate_limits.namespaces: no such namespace: {', '.join(map(repr, unknown))}"] if unknown else []


def _names(doc: _Document) -> list[str]:
    problems: list[str] = []
    separator = doc.field("tool_separator") if doc.valid(("tool_separator",)) else None
    for ns_name in map(str, doc.mapping("namespaces")):
        if not NAME_PATTERN.match(ns_name):
            problems.append(f"namespaces.{ns_name}: name must match {NAME_PATTERN.pattern}")
        if separator and separator in ns_name:
            problems.append(f"namespaces.{ns_name}: name contains the tool separator {separator!r}")
    seen: dict[str, str] = {}
    for ns_name, name in doc.backend_names():
        if name in seen:
            problems.append(f"namespaces.{ns_name}.backends: backend name {name!r} is already used in namespace {seen[name]!r}")
        seen.setdefault(name, ns_name)
    return problems


CROSS_FIELD_CHECKS: tuple[Callable[[_Document], list[str]], ...] = (
    _no_anonymous_network,
    _metrics_port_apart,
    _rate_limited_namespaces,
    _names,
)


def parse_config(data: Any) -> GatewayConfig:
    """Validate a decoded YAML document; raise ConfigError listing every problem, field and
    cross-field alike."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of keys to values"])
    config, problems, errors = None, [], []
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems, errors = _format_errors(exc), [tuple(err["loc"]) for err in exc.errors()]
    document = _Document(data, errors)
    for check in CROSS_FIELD_CHECKS:
        problems += check(document)
    if problems or config is None:
        raise ConfigError(problems)
    return config
