"""The gateway's configuration: one YAML file validated at start-up, environment overrides for
what a container platform sets, secrets only from the environment or files.

model.py holds the sections and their fields (auth.py the `auth:` section), checks.py turns a
decoded document into a GatewayConfig listing every problem, loading.py reads the file and the
environment, defaults.py is the embedded default."""

from app.config.auth import AuthConfig, JwtConfig
from app.config.checks import ConfigError, parse_config
from app.config.loading import load_config, read_config_file, redis_password
from app.config.model import (
    BackendConfig,
    BreakerConfig,
    GatewayConfig,
    HealthCheckConfig,
    NamespaceConfig,
    RateLimitConfig,
    TelemetryConfig,
    is_loopback,
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
    "redis_password",
]
