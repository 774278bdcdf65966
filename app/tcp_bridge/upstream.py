"""The gateway WebSocket behind one TCP connection: opened with the connection's credentials."""

from __future__ import annotations

import logging

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from app import __version__
from app.core.headers import TRANSPORT_HEADER
from app.tcp_bridge.config import BridgeConfig

SUBPROTOCOL = "mcp"
USER_AGENT = f"mcp-gateway-tcp-bridge/{__version__}"
#: Close code a gateway sends when it shuts down or restarts.
GOING_AWAY = 1001

#: websockets logs handshake headers (the bearer token among them) at DEBUG: never let it.
_ws_log = logging.getLogger("mcp_gateway.tcp_bridge.websocket")
_ws_log.setLevel(logging.INFO)


class UpstreamError(Exception):
    """The gateway WebSocket could not be opened."""


class UpstreamUnauthorized(UpstreamError):
    """The gateway refused the upgrade with 401 or 403: the connection's credentials are no good."""

    def __init__(self, status: int, reason: str | None = None):
        detail = f": {reason}" if reason else ""
        super().__init__(f"the gateway refused the connection's credentials (HTTP {status}){detail}")
        self.status = status


def _denial_reason(body: bytes | bytearray | None) -> str | None:
    """The JSON-RPC error message of the gateway's denial response, if it sent one."""
    try:
        message = orjson.loads(body or b"")["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return str(message)[:200] if message else None


class UpstreamUnavailable(UpstreamError):
    """Nothing answered, or the upgrade failed for another reason; a later request may retry."""


async def open_upstream(config: BridgeConfig, token: str | None, client_address: str | None) -> ClientConnection:
    headers: dict[str, str] = {TRANSPORT_HEADER: "tcp"}  # The gateway labels our requests tcp.
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if client_address:
        # For per-client-IP limits and logs at the gateway (trust it only from the bridge).
        headers["X-Forwarded-For"] = client_address
    try:
        ws = await connect(
            config.gateway_url,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=headers,
            user_agent_header=USER_AGENT,
            compression=None,  # small JSON messages on a local hop: latency over bytes
            max_size=config.max_frame_bytes,  # nothing larger could be framed back anyway
            open_timeout=config.connect_timeout,
            close_timeout=2,
            proxy=None,  # a sidecar talks to its gateway directly, whatever the environment says
            logger=_ws_log,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise UpstreamUnauthorized(status, _denial_reason(exc.response.body)) from None
        raise UpstreamUnavailable(f"the gateway refused the WebSocket upgrade (HTTP {status})") from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise UpstreamUnavailable(f"cannot reach the gateway: {type(exc).__name__}: {exc}") from None
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close()
        raise UpstreamUnavailable("the gateway did not accept the 'mcp' subprotocol")
    return ws
