"""Build the right backend for a configured replica."""

from __future__ import annotations

from app.backends.base import Backend
from app.config import BackendConfig


def create_backend(namespace: str, config: BackendConfig) -> Backend:
    if config.transport == "http":
        from app.backends.http import HttpBackend

        return HttpBackend(namespace, config)
    if config.transport == "websocket":
        from app.backends.websocket import WebSocketBackend

        return WebSocketBackend(namespace, config)
    from app.backends.stdio import StdioBackend

    return StdioBackend(namespace, config)
