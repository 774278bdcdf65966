"""The gateway's configuration: one YAML file validated at start-up, environment overrides for
what a container platform sets, secrets only from the environment or files."""

from app.config.auth import AuthConfig, JwtConfig
from app.config.model import (
    BackendConfig,
    BreakerConfig,
    ConfigError,
    GatewayConfig,
    HealthCheckConfig,
    NamespaceConfig,
    RateLimitConfig,
    TelemetryConfig,
    is_loopback,
    load_config,
    parse_config,
    read_config_file,
)

__all__ = [
    "AuthConfig",
    "BackendConfig",
    "BreakerConfig",
    "ConfigError",
    "GatewayConfig",
    "HealthCheckConfig",
    "JwtConfig",
    "NamespaceConfig",
    "RateLimitConfig",
    "TelemetryConfig",
    "is_loopback",
    "load_config",
    "parse_config",
    "read_config_file",
]
