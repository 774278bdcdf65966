"""MCP clients to upstream servers: Streamable HTTP (pooled), WebSocket and stdio."""

from app.backends.base import Backend, BackendFailure, Handshake, UpstreamSessionGone
from app.backends.factory import create_backend

__all__ = ["Backend", "BackendFailure", "Handshake", "UpstreamSessionGone", "create_backend"]
