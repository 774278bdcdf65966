"""The gateway's configuration model: every section, its fields, defaults and limits, and the
checks that concern one section alone (cross-field checks over the whole file: checks.py)."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.config.auth import AuthConfig

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


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
