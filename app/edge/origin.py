"""DNS-rebinding protection: refuse a foreign `Host` (421) or `Origin` (403), accept our own."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from app import telemetry
from app.config import GatewayConfig, is_loopback
from app.core.jsonrpc import ErrorCode, GatewayError


def _hostname(authority: str) -> str:
    """`example.com:8080` -> `example.com`, `[::1]:80` -> `::1`."""
    return (urlsplit(f"//{authority}").hostname or "").lower()


class OriginPolicy:
    """Built once from configuration; checked on every `/mcp` request and `/ws` upgrade."""

    def __init__(self, config: GatewayConfig):
        self.loopback_only = is_loopback(config.host)
        self.allowed_hosts = {h.lower() for h in config.allowed_hosts}
        self.allowed_origins = {o.rstrip("/").lower() for o in config.allowed_origins}

    def check(self, headers: Mapping[str, str]) -> None:
        host = headers.get("host", "")
        hostname = _hostname(host)
        if self.allowed_hosts:
            host_ok = host.lower() in self.allowed_hosts or hostname in self.allowed_hosts
        else:
            # Bound to loopback, only loopback names can reach us legitimately; a rebinding
            # attacker's page arrives with its own domain in Host.
            host_ok = not self.loopback_only or is_loopback(hostname)
        if not host_ok:
            raise GatewayError(ErrorCode.FORBIDDEN, f"Host '{host}' is not served here", http_status=421)
        origin = headers.get("origin")
        if origin is None:
            return  # Not a browser: Origin validation protects browsers' users.
        origin_l = origin.rstrip("/").lower()
        own = urlsplit(origin_l).netloc == host.lower()
        if own or origin_l in self.allowed_origins or "*" in self.allowed_origins:
            return
        telemetry.auth_attempt("origin", "failure")
        raise GatewayError(ErrorCode.FORBIDDEN, f"Origin '{origin}' is not allowed", http_status=403)
