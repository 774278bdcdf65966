"""Choose the state backend from configuration."""

from __future__ import annotations

import os

from app.state.base import StateStore
from app.state.memory import MemoryStore


def open_store(redis_url: str | None, session_ttl: int) -> StateStore:
    """Redis when a URL is configured (password from MCP_GATEWAY_REDIS_PASSWORD), else in-memory."""
    if not redis_url:
        return MemoryStore(session_ttl)
    from app.state.redis import RedisStore

    return RedisStore(redis_url, session_ttl, password=os.environ.get("MCP_GATEWAY_REDIS_PASSWORD") or None)
