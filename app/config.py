"""Gateway configuration: one YAML file, validated up front, with environment overrides.

Every error names the key path and the problem, so `mcp-gateway check-config` can list them
all at once instead of failing on the first.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.auth.config import AuthConfig

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
    from limits import parse  # Imported here: only a configuration that sets a rate needs it.

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
    caller's calls into one namespace (on top of the others)."""

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
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    max_in_flight_per_connection: Annotated[int, Field(ge=1)] = 64
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    replica_down_seconds: Annotated[float, Field(ge=0)] = 5.0
    drain_timeout_seconds: Annotated[float, Field(ge=1, le=3600)] = 20.0
    #: Peers whose X-Forwarded-For and X-MCP-Transport are believed (the bridge sidecar on loopback).
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
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

    @field_validator("tool_separator")
    @classmethod
    def _separator_charset(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-/:]+", value):
            raise ValueError("may use only letters, digits and _ . - / :")
        return value

    @model_validator(mode="after")
    def _no_anonymous_network(self) -> GatewayConfig:
        if self.auth.modes == {"none"} and not is_loopback(self.host):
            raise ValueError(
                f"auth.mode: 'none' is only allowed when the gateway binds a loopback address, not {self.host!r}; "
                "configure jwt or api_key"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_apart(self) -> GatewayConfig:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(f"metrics_port: {self.metrics_port} is also the gateway's port; use another one (or 0 to turn metrics off)")
        return self

    @model_validator(mode="after")
    def _rate_limited_namespaces(self) -> GatewayConfig:
        unknown = sorted(set(self.rate_limits.namespaces) - set(self.namespaces))
        if unknown:
            raise ValueError(f"rate_limits.namespaces: no such namespace: {', '.join(map(repr, unknown))}")
        return self

    @model_validator(mode="after")
    def _names(self) -> GatewayConfig:
        problems: list[str] = []
        seen: dict[str, str] = {}
        for ns_name, ns in self.namespaces.items():
            if not NAME_PATTERN.match(ns_name):
                problems.append(f"namespaces.{ns_name}: name must match {NAME_PATTERN.pattern}")
            if self.tool_separator in ns_name:
                problems.append(
                    f"namespaces.{ns_name}: name contains the tool separator {self.tool_separator!r}"
                )
            for backend in ns.backends:
                if backend.name in seen:
                    problems.append(
                        f"namespaces.{ns_name}.backends: backend name {backend.name!r} "
                        f"is already used in namespace {seen[backend.name]!r}"
                    )
                seen[backend.name] = ns_name
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ConfigError(Exception):
    """A configuration that cannot run; `problems` holds one 'key: message' line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return lines


def parse_config(data: Any) -> GatewayConfig:
    """Validate a decoded YAML document; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of keys to values"])
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read YAML; an unreadable or malformed file is a ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    return data if data is not None else {}


def demo_namespaces() -> dict[str, Any]:
    """The embedded default: the bundled demo servers over stdio, nothing else to start."""
    return {
        "weather": {
            "backends": [{"name": "weather-1", "command": [sys.executable, "-m", "app.demo.weather"]}]
        },
        "notes": {
            "backends": [{"name": "notes-1", "command": [sys.executable, "-m", "app.demo.notes"]}]
        },
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
