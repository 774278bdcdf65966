"""Who is on the other end: the peer, or the client a trusted proxy (the TCP bridge sidecar, a
load balancer) says it relays. Only peers in `trusted_proxies` are believed, and none is by
default: forwarded headers from anyone else are ignored, so a client cannot pick its own
rate-limit bucket or protocol label."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

from starlette.types import Scope

from app.core.headers import RELAYED_TRANSPORTS, TRANSPORT_HEADER


class ClientResolver:
    def __init__(self, trusted_proxies: Iterable[str]):
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        # Asked of every request; peers repeat, so the answers are kept (a bounded number).
        self._trusted_address = lru_cache(maxsize=4096)(self._in_trusted_network)

    def _in_trusted_network(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def _trusted(self, peer: str | None) -> bool:
        return bool(peer and self.trusted and self._trusted_address(peer))

    def relayed(self, scope: Scope) -> bool:
        """Does this ASGI connection come from a trusted relay of another transport?"""
        client = scope.get("client")
        peer = client[0] if isinstance(client, (tuple, list)) and client else None
        if not self._trusted(peer):
            return False
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        # Latin-1 decodes any bytes (as Starlette reads headers): a value that is not UTF-8 is an
        # unknown transport, not an error.
        relayed = headers.get(TRANSPORT_HEADER.encode(), b"").decode("latin-1").lower()
        return relayed in RELAYED_TRANSPORTS

    def resolve(self, peer: str | None, headers: Mapping[str, str], protocol: str) -> tuple[str | None, str]:
        """(client address, protocol) for a request that arrived from `peer` over `protocol`."""
        if not self._trusted(peer):
            return peer, protocol
        forwarded = headers.get("x-forwarded-for", "")
        # The right-most entry is the one our trusted proxy added.
        client = forwarded.rsplit(",", 1)[-1].strip() or peer
        relayed = headers.get(TRANSPORT_HEADER, "").lower()
        return client, relayed if relayed in RELAYED_TRANSPORTS else protocol
