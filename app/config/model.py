"""Gateway configuration: one YAML file, validated up front, with environment overrides.

Every error names the key path and the problem, so `mcp-gateway check-config` (and `serve`, which
validates the same way) can list them all at once instead of failing on the first: field errors
and cross-field problems together, one per line. A key given twice in the file is refused with
both line numbers (YAML would silently keep the last); an unknown key gets the closest known one.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from app.config.auth import AuthConfig

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

#: Environment variables that win over the file (the container platform sets these).
ENV_OVERRIDES = {
    "MCP_GATEWAY_REDIS_URL": "redis_url",
    "MCP_GATEWAY_HOST": "host",
    "MCP_GATEWAY_PORT": "port",
    "MCP_GATEWAY_METRICS_PORT": "metrics_port",
    "MCP_GATEWAY_METRICS_HOST": "metrics_host",
}


@lru_cache(maxsize=256)  # Asked of every request's Host; bounded, as clients choose the value.
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendConfig(_Strict):
    """One replica of an MCP server: a URL (Streamable HTTP or WebSocket) or a stdio command."""

    name: Annotated[str, Field(pattern=NAME_PATTERN.pattern)]
    url: str | None = None
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: Streamable HTTP only: connections to this replica for calls, and, apart, for standalone
    #: streams (one per listening gateway session), so held streams never starve calls.
    max_connections: Annotated[int, Field(ge=1, le=10000)] = 200
    max_stream_connections: Annotated[int, Field(ge=1, le=10000)] = 100

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError("must be an http(s):// (Streamable HTTP) or ws(s):// (WebSocket) URL")
        return value

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must name a program to run")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> BackendConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError("set exactly one of 'url' (HTTP/WebSocket) or 'command' (stdio)")
        if self.env and self.command is None:
            raise ValueError("'env' applies only to stdio backends ('command')")
        pools = {"max_connections", "max_stream_connections"} & self.model_fields_set
        if pools and self.transport != "http":
            raise ValueError(f"{', '.join(sorted(pools))}: applies only to Streamable HTTP backends (http:// or https://)")
        return self

    @property
    def transport(self) -> Literal["http", "websocket", "stdio"]:
        if self.command is not None:
            return "stdio"
        return "websocket" if self.url.startswith(("ws://", "wss://")) else "http"  # type: ignore[union-attr]


class NamespaceConfig(_Strict):
    """Replicas of one MCP server, exposed under one name prefix (or none)."""

    prefix: bool = True
    balance: Literal["least_inflight", "round_robin"] = "least_inflight"
    #: The call timeout of every replica that does not set its own `timeout_seconds`.
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    backends: Annotated[list[BackendConfig], Field(min_length=1)]

    def effective(self, backend: BackendConfig) -> BackendConfig:
        """A replica's settings with the namespace's defaults applied (the replica's own win)."""
        if self.timeout_seconds is None or "timeout_seconds" in backend.model_fields_set:
            return backend
        return backend.model_copy(update={"timeout_seconds": self.timeout_seconds})


def _rate(value: str) -> str:
    """A `limits` rate string such as "600/minute" or "10 per second"."""
    from limits import (
        parse,  # Imported here: only a configuration that sets a rate needs it.
    )

    try:
        item = parse(value)
    except ValueError:
        item = None
    if item is None or item.amount < 1:
        raise ValueError(f"{value!r} is not a rate: write it as '<count>/<second|minute|hour|day>', e.g. '600/minute'")
    return value


Rate = Annotated[str, AfterValidator(_rate)]


class BreakerConfig(_Strict):
    """Circuit breakers, one per backend replica: closed -> open after `failure_threshold`
    consecutive failures or an error rate of at least `error_rate` over `window_seconds` (once
    `min_calls` calls were made there); open -> half-open after `cooldown_seconds`; half-open lets
    `half_open_probes` calls through at once; a success closes, a failure re-opens."""

    failure_threshold: Annotated[int, Field(ge=1)] = 5
    error_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    window_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    min_calls: Annotated[int, Field(ge=1)] = 20
    cooldown_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    half_open_probes: Annotated[int, Field(ge=1)] = 1


class HealthCheckConfig(_Strict):
    """Active health checks: an MCP `ping` to every replica every `interval_seconds`."""

    enabled: bool = True
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0


class RateLimitConfig(_Strict):
    """Rate limits shared by every replica (in Redis when `redis_url` is set). `per_principal`
    applies to each authenticated caller, `per_ip` to each client address, `namespaces` to each
    caller's calls into one namespace (on top of the others). `per_ip` left unset is off on a
    gateway bound to loopback without authentication (see GatewayConfig)."""

    enabled: bool = True
    per_principal: Rate | None = "600/minute"
    per_ip: Rate | None = "1200/minute"
    namespaces: dict[str, Rate] = Field(default_factory=dict)


class TelemetryConfig(_Strict):
    """What the gateway's telemetry records beyond the standard `OTEL_*` environment.

    `user_label`: how the caller appears in the `user` label, span attribute and log field:
    `hashed` (the default: a stable pseudonym, no identities in telemetry), `raw` (the principal's
    subject) or `off` (left out: one series per method/status/namespace, whatever the users). `certificate_files`: PEM certificates whose expiry is
    exported as `x509_cert_expiry{subject}` (the gateway's TLS certificates, wherever TLS ends).
    """

    user_label: Literal["raw", "hashed", "off"] = "hashed"
    certificate_files: list[str] = Field(default_factory=list)


class GatewayConfig(_Strict):
    """The whole gateway. Defaults are the safe, single-process embedded mode."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    #: Prometheus scrape endpoint (`/metrics`); 0 turns it off. `metrics_host` defaults to `host`.
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9090
    metrics_host: str | None = None
    redis_url: str | None = None
    tool_separator: Annotated[str, Field(min_length=1, max_length=8)] = "__"
    session_ttl_seconds: Annotated[int, Field(ge=10)] = 3600
    #: Live sessions one authenticated principal may hold; a further `initialize` is refused
    #: (-32029, HTTP 429). 0: no cap. Anonymous callers (auth off) share one identity: not capped.
    max_sessions_per_principal: Annotated[int, Field(ge=0)] = 100
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    #: Request head bounds, enforced before anything reads the request (app/edge/head.py):
    #: a larger head or more fields get 431, a head not complete in time 408.
    max_header_bytes: Annotated[int, Field(ge=4096, le=16 * 1024 * 1024)] = 64 * 1024
    max_header_fields: Annotated[int, Field(ge=16, le=10000)] = 100
    header_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    max_in_flight_per_connection: Annotated[int, Field(ge=1)] = 64
    #: Standalone streams (GET /mcp) one principal may hold open on one gateway replica at once.
    max_streams_per_principal: Annotated[int, Field(ge=1, le=100000)] = 32
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    replica_down_seconds: Annotated[float, Field(ge=0)] = 5.0
    drain_timeout_seconds: Annotated[float, Field(ge=1, le=3600)] = 20.0
    #: Peers (addresses or CIDR networks) whose X-Forwarded-For and X-MCP-Transport are believed:
    #: the TCP bridge sidecar (127.0.0.1/32), a load balancer's subnet. None by default: any local
    #: process could otherwise choose its rate-limit bucket.
    trusted_proxies: list[str] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    health_checks: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    namespaces: Annotated[dict[str, NamespaceConfig], Field(min_length=1)]

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"'{network}' is not an IP address or CIDR network") from None
        return value

    @field_validator("tool_separator")
    @classmethod
    def _separator_charset(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-/:]+", value):
            raise ValueError("may use only letters, digits and _ . - / :")
        return value

    @model_validator(mode="after")
    def _default_per_ip_spares_the_local_user(self) -> GatewayConfig:
        """The default per-IP budget guards a gateway reachable from the network. Bound to loopback
        without authentication, every caller is the machine's own user at one address: the budget
        would only throttle their own programs. A `per_ip` set in the file always applies."""
        if "per_ip" not in self.rate_limits.model_fields_set and is_loopback(self.host) and self.auth.modes == {"none"}:
            object.__setattr__(self, "rate_limits", self.rate_limits.model_copy(update={"per_ip": None}))  # Frozen model.
        return self


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


def demo_namespaces() -> dict[str, Any]:
    """The embedded default: the bundled demo servers over stdio, nothing else to start."""
    return {
        "weather": {"backends": [{"name": "weather-1", "command": [sys.executable, "-m", "app.demo.weather"]}]},
        "notes": {"backends": [{"name": "notes-1", "command": [sys.executable, "-m", "app.demo.notes"]}]},
    }


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
