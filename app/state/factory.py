"""Choose the state backend from configuration."""

from __future__ import annotations

import os

from app.state.base import StateStore
from app.state.memory import MemoryStore


def redis_password() -> str | None:
    """The Redis password: from the environment only, never the configuration file."""
    return os.environ.get("MCP_GATEWAY_REDIS_PASSWORD") or None


def open_store(redis_url: str | None, session_ttl: int) -> StateStore:
    """Redis when a URL is configured (password from MCP_GATEWAY_REDIS_PASSWORD), else in-memory."""
    if not redis_url:
        return MemoryStore(session_ttl)
    from app.state.redis import RedisStore

    return RedisStore(redis_url, session_ttl, password=redis_password())


def store_problem(redis_url: str | None) -> str | None:
    """Checked before serving: a state store that will refuse every request (wrong credentials)."""
    if not redis_url:
        return None
    from app.state.redis import credentials_problem

    return credentials_problem(redis_url, redis_password())
