"""Redis state: every replica reads and writes the same sessions, so any replica serves any request."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from app.core.jsonrpc import ErrorCode, GatewayError
from app.state.base import (
    SessionLimitReached,
    SessionRecord,
    StateStore,
    UpstreamBinding,
)
from app.telemetry import redis_operation

PREFIX = "mcpgw:"
SESSIONS_INDEX = PREFIX + "sessions"
#: How long a session's hash outlives its expiry (the score in SESSIONS_INDEX, which decides):
#: long enough for a replica's sweep to claim it and end its upstream sessions.
EXPIRED_GRACE_SECONDS = 300

# A new session; with a limit (ARGV[4] > 0), only if its owner has fewer live sessions. The
# owner's set drops members that expired or vanished. Returns 0, or the soonest expiry if refused.
_CREATE = """
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[4])
if limit > 0 then
  local live, soonest = 0, nil
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local expiry = tonumber(redis.call('ZSCORE', KEYS[2], member))
    if expiry == nil or expiry <= now then
      redis.call('ZREM', KEYS[3], member)
    else
      live = live + 1
      if soonest == nil or expiry < soonest then soonest = expiry end
    end
  end
  if live >= limit then return tostring(soonest) end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 0
"""

# Read a live session and slide its expiry; an expired one is left for the sweep.
_GET = """
local expiry = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if expiry == nil or expiry <= tonumber(ARGV[2]) then return {} end
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
end
return fields
"""

# Claim an expired session: only the caller that removes it from the index gets its fields.
_CLAIM = """
local expiry = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if expiry == nil or expiry > tonumber(ARGV[2]) then return {} end
redis.call('ZREM', KEYS[2], ARGV[1])
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
"""

# Bind only while the session still exists, so a late bind never resurrects a deleted session
# (a hash created by HSETNX would have no TTL and live forever).
_BIND_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
  return redis.call('HGET', KEYS[1], ARGV[1])
end
return ARGV[2]
"""

# Overwrite a binding only while the session exists (EXISTS then HSET from the client could
# recreate a just-deleted session as a hash without a TTL).
_REPLACE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
"""


T = TypeVar("T")
P = ParamSpec("P")


class StateUnavailable(GatewayError):
    """Redis cannot be reached: a clear, retryable 503 instead of a hang or a 500."""

    def __init__(self, reason: str):
        super().__init__(
            ErrorCode.STATE_UNAVAILABLE,
            f"Session store unavailable ({reason}); retry shortly",
            http_status=503,
            headers={"retry-after": "1"},
        )


def _unavailable_as_503(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis and socket errors of a store method as `StateUnavailable`; the signature is kept."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(type(exc).__name__) from None

    return guarded


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash as a script returns it (a flat list of names and values)."""
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _session_key(session_id: str) -> str:
    return f"{PREFIX}s:{session_id}"


def _owner_key(principal: str) -> str:
    return f"{PREFIX}o:{principal}"


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
        self._replace = self.client.register_script(_REPLACE_IF_EXISTS)
        self._create = self.client.register_script(_CREATE)
        self._get = self.client.register_script(_GET)
        self._claim = self.client.register_script(_CLAIM)
        #: The hash's own TTL: the session's, plus the time a sweep has to claim it.
        self.hash_ttl = session_ttl + EXPIRED_GRACE_SECONDS

    @_unavailable_as_503
    @redis_operation("create_session")
    async def create_session(self, record: SessionRecord, limit: int = 0) -> None:
        now = time.time()
        fields = [item for pair in record.to_fields().items() for item in pair]
        keys = [_session_key(record.id), SESSIONS_INDEX, _owner_key(record.principal)]
        refused = await self._create(keys=keys, args=[record.id, now, now + self.session_ttl, limit, self.hash_ttl, *fields])
        if refused:
            raise SessionLimitReached(limit, float(refused) - now)

    @_unavailable_as_503
    @redis_operation("get_session")
    async def get_session(self, session_id: str) -> SessionRecord | None:
        now = time.time()
        keys = [_session_key(session_id), SESSIONS_INDEX]
        flat = await self._get(keys=keys, args=[session_id, now, now + self.session_ttl, self.hash_ttl])
        return SessionRecord.from_fields(session_id, _pairs(flat)) if flat else None

    @_unavailable_as_503
    @redis_operation("bind_upstream")
    async def bind_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> UpstreamBinding:
        winner = await self._bind(keys=[_session_key(session_id)], args=[f"up:{namespace}", binding.encode()])
        return UpstreamBinding.decode(winner)

    @_unavailable_as_503
    @redis_operation("replace_upstream")
    async def replace_upstream(self, session_id: str, namespace: str, binding: UpstreamBinding) -> None:
        await self._replace(keys=[_session_key(session_id)], args=[f"up:{namespace}", binding.encode()])

    @_unavailable_as_503
    @redis_operation("delete_session")
    async def delete_session(self, session_id: str) -> SessionRecord | None:
        key = _session_key(session_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            pipe.zrem(SESSIONS_INDEX, session_id)
            fields, _, _ = await pipe.execute()
        if not fields:
            return None
        record = SessionRecord.from_fields(session_id, fields)
        await self.client.zrem(_owner_key(record.principal), session_id)
        return record

    @_unavailable_as_503
    @redis_operation("count_sessions")
    async def count_sessions(self) -> int:
        return int(await self.client.zcount(SESSIONS_INDEX, f"({time.time()}", "+inf"))

    @_unavailable_as_503
    @redis_operation("take_expired")
    async def take_expired(self, limit: int) -> list[SessionRecord]:
        now = time.time()
        # Members only (no scores), decoded: the client was made with decode_responses=True.
        expired = cast(list[str], await self.client.zrangebyscore(SESSIONS_INDEX, "-inf", now, start=0, num=limit))
        if not expired:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for session_id in expired:
                await self._claim(keys=[_session_key(session_id), SESSIONS_INDEX], args=[session_id, now], client=pipe)
            claimed = await pipe.execute()
        records = [SessionRecord.from_fields(sid, _pairs(flat)) for sid, flat in zip(expired, claimed, strict=False) if flat]
        async with self.client.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.zrem(_owner_key(record.principal), record.id)
            await pipe.execute()
        return records

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
