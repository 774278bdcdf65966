"""Forwarded client addresses and relayed transports are believed only from trusted proxies."""

from __future__ import annotations

import pytest

from app.config import ConfigError, parse_config
from app.edge.client_address import ClientResolver

RESOLVER = ClientResolver(["10.0.0.1/32", "::1/128"])


def test_a_trusted_proxy_names_the_client_and_its_transport() -> None:
    headers = {"x-forwarded-for": "203.0.113.9", "x-mcp-transport": "tcp"}
    assert RESOLVER.resolve("10.0.0.1", headers, "websocket") == ("203.0.113.9", "tcp")
    assert RESOLVER.resolve("::1", {"x-forwarded-for": "spoofed, 198.51.100.4"}, "http") == ("198.51.100.4", "http")


def test_anyone_else_cannot_choose_their_address_or_label() -> None:
    headers = {"x-forwarded-for": "203.0.113.9", "x-mcp-transport": "tcp"}
    assert RESOLVER.resolve("10.0.0.2", headers, "websocket") == ("10.0.0.2", "websocket")
    assert ClientResolver([]).resolve("10.0.0.1", headers, "http") == ("10.0.0.1", "http")


def test_only_known_relayed_transports_are_accepted() -> None:
    assert RESOLVER.resolve("10.0.0.1", {"x-mcp-transport": "carrier-pigeon"}, "websocket") == ("10.0.0.1", "websocket")


def test_relayed_connections_are_recognised_from_the_asgi_scope() -> None:
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-mcp-transport", b"tcp")]}
    assert RESOLVER.relayed(scope)
    assert not RESOLVER.relayed({**scope, "client": ("10.0.0.2", 5000)})
    assert not RESOLVER.relayed({**scope, "headers": []})


def test_no_peer_is_trusted_unless_configured() -> None:
    """A process on the gateway's own host must not pick its rate-limit bucket by default."""
    config = parse_config({"namespaces": {"local": {"backends": [{"name": "local-1", "command": ["true"]}]}}})
    default = ClientResolver(config.trusted_proxies)
    headers = {"x-forwarded-for": "203.0.113.9", "x-mcp-transport": "tcp"}
    assert default.resolve("127.0.0.1", headers, "http") == ("127.0.0.1", "http")
    assert default.resolve("::1", headers, "websocket") == ("::1", "websocket")
    assert not default.relayed({"client": ("127.0.0.1", 5000), "headers": [(b"x-mcp-transport", b"tcp")]})


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ConfigError, match="not an IP address or CIDR network"):
        parse_config({"trusted_proxies": ["bridge.local"], "namespaces": {"local": {"backends": [{"name": "l", "command": ["true"]}]}}})


def test_a_transport_header_that_is_not_utf8_is_an_unknown_transport() -> None:
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-mcp-transport", b"\xfftcp\xc3")]}
    assert not RESOLVER.relayed(scope)
