"""Start-up discovery and what the gateway declares in `initialize`: each namespace is asked for
its capabilities and instructions (one replica each), merged over the gateway's own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from app.backends.multiplexed import GATEWAY_HANDSHAKE
from app.core.jsonrpc import GatewayError
from app.pipeline.routing import Namespace

log = logging.getLogger("mcp_gateway")

#: Every server gets these capabilities advertised; backends' own are merged in.
BASE_CAPABILITIES: dict[str, Any] = {
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True},
    "logging": {},
    "completions": {},
}
#: The gateway introduces itself under its own name when it only wants a server's capabilities.
DISCOVERY_HANDSHAKE = GATEWAY_HANDSHAKE


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif value is not None and (into.get(key) is None or value is True):
            into[key] = value
    return into


class Discovery:
    def __init__(self, namespaces: dict[str, Namespace]):
        self.namespaces = namespaces

    async def run(self, timeout: float) -> None:
        """Learn each namespace's capabilities (one replica each) so `initialize` can merge them."""
        await asyncio.gather(*(self._discover(ns, timeout) for ns in self.namespaces.values()))

    async def _discover(self, ns: Namespace, timeout: float) -> None:
        replica = ns.pick()
        try:
            async with asyncio.timeout(timeout):
                opened = await replica.client.open_session(DISCOVERY_HANDSHAKE, {})
                await replica.client.end_session(opened.session_id, opened.protocol_version)
            replica.healthy = True
        except (GatewayError, TimeoutError) as exc:
            replica.healthy = False
            log.warning("backend discovery failed: %s", exc, extra={"namespace": ns.name, "backend": replica.name})

    def capabilities(self) -> dict[str, Any]:
        merged = _merge({}, BASE_CAPABILITIES)
        for result in self._server_results(ns for ns in self.namespaces.values()):
            _merge(merged, result.get("capabilities") or {})
        return merged

    def instructions(self) -> str | None:
        parts = []
        for ns in self.namespaces.values():
            text = next((result.get("instructions") for result in self._server_results([ns])), None)
            if text:
                parts.append(f"## {ns.name}\n{text}")
        return "\n\n".join(parts) or None

    @staticmethod
    def _server_results(namespaces: Iterable[Namespace]) -> list[dict[str, Any]]:
        """The latest initialize result each replica gave (those that gave one)."""
        return [r.client.server_result for ns in namespaces for r in ns.replicas if r.client.server_result]
