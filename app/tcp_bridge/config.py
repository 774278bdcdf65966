"""The bridge's settings: where it listens, which gateway it relays to, and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from app.tcp_bridge.codec import DEFAULT_MAX_FRAME_BYTES

DEFAULT_LISTEN = "127.0.0.1:8445"
DEFAULT_GATEWAY = "ws://127.0.0.1:8080/ws"
DEFAULT_METRICS_PORT = 9092


@dataclass(frozen=True)
class BridgeConfig:
    host: str = "127.0.0.1"
    port: int = 8445
    #: The gateway's WebSocket endpoint (`ws://host:port/ws`).
    gateway_url: str = DEFAULT_GATEWAY
    #: Prometheus scrape port; 0 turns the endpoint off.
    metrics_port: int = DEFAULT_METRICS_PORT
    metrics_host: str = "127.0.0.1"
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    #: Open TCP connections; one more is answered `too_many_connections` and closed.
    max_connections: int = 1024
    #: Connections from one address (IPv6: one /64) that have no gateway session yet; one more is
    #: answered `too_many_connections` and closed, so strangers cannot take every slot.
    max_unauthenticated_per_address: int = 32
    #: A connection with no gateway session this long after it opened (its first request never
    #: came, or only HealthCheck frames did) is answered `auth_timeout` and closed.
    auth_timeout: float = 10.0
    #: Requests awaiting their response per connection (the gateway's own default is 64).
    max_in_flight: int = 64
    #: Largest JSON-RPC message the gateway accepts on `/ws` (its `max_body_bytes`); a larger
    #: request is refused by the bridge with a JSON-RPC error instead of costing the session.
    upstream_max_message_bytes: int = 4 * 1024 * 1024
    #: No frame either way and nothing in flight for this long: the connection is closed.
    idle_timeout: float = 300.0
    #: SIGTERM: how long in-flight requests get to finish after `goaway`.
    drain_timeout: float = 30.0
    #: A client that does not read its frames for this long is disconnected.
    write_timeout: float = 30.0
    #: Opening the gateway WebSocket (TCP + upgrade).
    connect_timeout: float = 10.0
    #: Gateway reachability is probed at most this often (HealthCheck answers share a probe).
    health_cache_seconds: float = 2.0
    health_timeout: float = 1.0

    @property
    def health_url(self) -> str:
        """The gateway's readiness endpoint, next to its WebSocket endpoint."""
        parts = urlsplit(self.gateway_url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, "/readyz", "", ""))


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` (loopback). Raises ValueError with the reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def normalize_gateway_url(value: str) -> str:
    """`ws(s)://host:port[/path]` (path defaults to `/ws`), or `http(s)://host:port` for the same."""
    parts = urlsplit(value)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"--gateway must be a ws://, wss://, http:// or https:// URL, got {value!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))
