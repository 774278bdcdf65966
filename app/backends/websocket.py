"""WebSocket backends (subprotocol `mcp`, one JSON-RPC message per text frame)."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from app.backends.multiplexed import MultiplexedBackend

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class WebSocketBackend(MultiplexedBackend):
    """One WebSocket per replica, shared by every gateway session."""

    _ws: ClientConnection | None = None

    async def _connect(self) -> None:
        try:
            self._ws = await connect(
                self.config.url or "",
                subprotocols=["mcp"],  # type: ignore[list-item]
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=5,
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidHandshake as exc:
            raise ValueError(f"WebSocket handshake refused: {exc}") from None

    async def _write(self, data: bytes) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        try:
            await self._ws.send(data.decode())
        except ConnectionClosed as exc:
            raise ConnectionError(str(exc)) from None

    async def _read(self) -> str | bytes | None:
        if self._ws is None:
            return None
        try:
            return await self._ws.recv()
        except ConnectionClosed:
            return None

    async def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
