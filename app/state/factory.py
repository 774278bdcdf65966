"""Choose the state backend from configuration, and open every Redis connection pool the gateway uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.config import redis_password
from app.state.base import StateStore
from app.state.memory import MemoryStore

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool


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


def open_limiter_pool(redis_url: str, *, max_connections: int, timeout: float) -> BlockingConnectionPool:
    """The rate limiter's connections to the gateway's Redis: bounded (a check waits at most
    `timeout` for a free one), short socket timeouts, and one immediate retry (after Redis
    restarts, each pooled connection's first command fails and the retry reconnects; no back-off
    sleeps inside a request). The state layer owns every Redis connection the gateway opens."""
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return BlockingConnectionPool.from_url(
        redis_url,
        password=redis_password(),
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout / 2,
        socket_timeout=timeout / 2,
        retry=Retry(NoBackoff(), 1),
    )
