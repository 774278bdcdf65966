"""Redis state: every replica reads and writes the same sessions, so any replica serves any request."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from app.jsonrpc import ErrorCode, GatewayError
from app.state.base import SessionRecord, StateStore, UpstreamBinding
from app.telemetry import redis_operation

PREFIX = "mcpgw:"
SESSIONS_INDEX = PREFIX + "sessions"

# Bind only while the session still exists, so a late bind never resurrects a deleted session
# (a hash created by HSETNX would have no TTL and live forever).
_BIND_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
  return redis.call('HGET', KEYS[1], ARGV[1])
end
return ARGV[2]
"""


T = TypeVar("T")


class StateUnavailable(GatewayError):
    """Redis cannot be reached: a clear, retryable 503 instead of a hang or a 500."""

    def __init__(self, reason: str):
        super().__init__(
            ErrorCode.STATE_UNAVAILABLE,
            f"Session store unavailable ({reason}); retry shortly",
            http_status=503,
            headers={"retry-after": "1"},
        )


def _unavailable_as_503(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(type(exc).__name__) from None

    return guarded


def _session_key(session_id: str) -> str:
    return f"{PREFIX}s:{session_id}"


def _pending_key(session_id: str, request_id: str) -> str:
    return f"{PREFIX}p:{session_id}:{request_id}"


class RedisStore(StateStore):
    """Sessions as hashes with a sliding TTL, indexed by a sorted set of expiry times for counting."""

    def __init__(self, url: str, session_ttl: int, password: str | None = None):
        super().__init__(session_ttl)
        self.client = aioredis.from_url(
            url,
            password=password,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=2,
            health_check_interval=30,
            max_connections=256,
        )
        self._bind = self.client.register_script(_BIND_IF_EXISTS)

    @_unavailable_as_503
    @redis_operation("create_session")
    async def create_session(self, record: SessionRecord) -> None:
        key = _session_key(record.id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record.to_fields())
            pipe.expire(key, self.session_ttl)
            pipe.zadd(SESSIONS_INDEX, {record.id: time.time() + self.session_ttl})
            await pipe.execute()

    @_unavailable_as_503
    @redis_operation("get_session")
    async def get_session(self, session_id: str) -> SessionRecord | None:
        key = _session_key(session_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.expire(key, self.session_ttl)
            pipe.zadd(SESSIONS_INDEX, {session_id: time.time() + self.session_ttl}, xx=True)
            fields, _, _ = await pipe.execute()
        if not fields:
            return None
        return SessionRecord.from_fields(session_id, fields)

    @_unavailable_as_503
    @redis_operation("bind_upstream")
    async def bind_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> UpstreamBinding:
        winner = await self._bind(keys=[_session_key(session_id)], args=[f"up:{namespace}", binding.encode()])
        return UpstreamBinding.decode(winner)

    @_unavailable_as_503
    @redis_operation("replace_upstream")
    async def replace_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        key = _session_key(session_id)
        if await self.client.exists(key):
            await self.client.hset(key, f"up:{namespace}", binding.encode())

    @_unavailable_as_503
    @redis_operation("delete_session")
    async def delete_session(self, session_id: str) -> SessionRecord | None:
        key = _session_key(session_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            pipe.zrem(SESSIONS_INDEX, session_id)
            fields, _, _ = await pipe.execute()
        return SessionRecord.from_fields(session_id, fields) if fields else None

    @_unavailable_as_503
    @redis_operation("count_sessions")
    async def count_sessions(self) -> int:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(SESSIONS_INDEX, "-inf", time.time())
            pipe.zcard(SESSIONS_INDEX)
            _, count = await pipe.execute()
        return int(count)

    @_unavailable_as_503
    @redis_operation("put_pending")
    async def put_pending(self, session_id: str, request_id: str, route: dict[str, Any], ttl: int) -> None:
        await self.client.set(_pending_key(session_id, request_id), orjson.dumps(route), ex=ttl)

    @_unavailable_as_503
    @redis_operation("pop_pending")
    async def pop_pending(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        raw = await self.client.getdel(_pending_key(session_id, request_id))
        return orjson.loads(raw) if raw else None

    @_unavailable_as_503
    @redis_operation("ping")
    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


def credentials_problem(url: str, password: str | None) -> str | None:
    """At start-up: why Redis refuses the gateway's credentials, or None (also when it is down).

    A wrong password never fixes itself, so it is reported at once instead of on the first
    request; an unreachable Redis may come back, and the gateway waits for it (`/readyz` 503).
    The message carries Redis's reason, never the URL (it may hold a password).
    """
    client = redis.Redis.from_url(url, password=password, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (AuthenticationError, NoPermissionError) as exc:
        return f"Redis refused the gateway's credentials ({exc}): check MCP_GATEWAY_REDIS_PASSWORD and the user in redis_url"
    except (RedisError, OSError):
        return None
    finally:
        client.close()
    return None
