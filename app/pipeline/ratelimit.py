"""Rate limits per principal, per client address and per namespace, shared by every replica.

The counters live in the gateway's Redis when `redis_url` is set (so every replica spends one
budget) and in memory otherwise. They are kept by the `limits` library (the one slowapi is built
on: the same storage, the same "600/minute" strings) through its asyncio API, called once per
JSON-RPC request by the pipeline, whatever the edge (HTTP, WebSocket, TCP via the bridge): see
docs/architecture.md, "Rate limiting", for why not slowapi's decorators and middleware.

Budgets, each a sliding window (two counters per key, so the storage cost does not grow with the
limit):
- `per_ip` for every client address;
- `per_principal` for every authenticated principal (anonymous callers have only their address);
- `namespaces.<ns>` for each caller's requests routed to that namespace, on top of the others
  (the caller is the principal when authenticated, else the address).

When the storage cannot be reached the limiter fails open: requests pass, a log line and
`mcp_gateway_rate_limit_failopen_total` say so, and the storage is tried again after a short
back-off (never on every request), so limiting resumes by itself when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from app import telemetry
from app.auth import Principal
from app.config import GatewayConfig, RateLimitConfig
from app.core.jsonrpc import ErrorCode, GatewayError
from app.state import open_limiter_pool

log = logging.getLogger("mcp_gateway.ratelimit")
T = TypeVar("T")

KEY_PREFIX = "mcpgw:rl"
#: The longest a limiter check may wait for its storage before the request passes anyway.
STORAGE_TIMEOUT_SECONDS = 1.0
#: Back-off after the storage failed: first retry after this, doubling up to the maximum.
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
#: Connections to Redis for the limiter (a check waits for a free one, then fails open).
MAX_CONNECTIONS = 128

STORAGE_ERRORS: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError, ConnectionError)
try:
    from redis.exceptions import RedisError

    STORAGE_ERRORS += (RedisError,)
except ImportError:  # pragma: no cover - redis is a dependency of the gateway
    pass


class RateLimited(GatewayError):
    """Over a limit: JSON-RPC -32029 with `data.retryAfterSeconds`; on HTTP, 429 and `Retry-After`."""

    def __init__(self, scope: str, limit: str, retry_after: int):
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"Rate limit exceeded: {limit} per {scope}; retry in {retry_after}s",
            data={"retryAfterSeconds": retry_after, "limit": limit, "scope": scope},
            http_status=429,
            headers={"Retry-After": str(retry_after)},
        )


@dataclass(frozen=True)
class _Budget:
    scope: str
    text: str
    item: RateLimitItem
    identifiers: tuple[str, ...]


def storage_uri(redis_url: str) -> str:
    """The gateway's Redis URL as a `limits` asyncio storage URI."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


def open_storage(redis_url: str | None) -> Storage:
    """Counters in the gateway's Redis (shared by every replica), or in this process without one."""
    if not redis_url:
        return MemoryStorage()
    pool = open_limiter_pool(redis_url, max_connections=MAX_CONNECTIONS, timeout=STORAGE_TIMEOUT_SECONDS)
    # limits types its storage options as scalars; a connection pool is what redis-py expects.
    return RedisStorage(storage_uri(redis_url), wrap_exceptions=True, implementation="redispy", key_prefix=KEY_PREFIX, connection_pool=pool)  # type: ignore[arg-type]


class RateLimiter:
    """One per gateway process; the counters it keeps are shared through the storage."""

    def __init__(self, settings: RateLimitConfig, storage: Storage | None = None):
        self.settings = settings
        self.enabled = settings.enabled
        self.storage = storage or MemoryStorage()
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.remote = not isinstance(self.storage, MemoryStorage)
        self.per_ip = _item(settings.per_ip)
        self.per_principal = _item(settings.per_principal)
        self.per_namespace = {ns: parse(text) for ns, text in settings.namespaces.items()}
        self._retry_at = 0.0
        self._backoff = BACKOFF_SECONDS
        self._failing = False
        self._probing = False

    @classmethod
    def from_config(cls, config: GatewayConfig) -> RateLimiter:
        storage = open_storage(config.redis_url) if config.rate_limits.enabled else MemoryStorage()
        return cls(config.rate_limits, storage)

    def budgets(self, principal: Principal, client_address: str | None, namespace: str | None) -> list[_Budget]:
        budgets: list[_Budget] = []
        authenticated = principal.kind != "anonymous"
        if self.per_ip is not None and client_address:
            budgets.append(_Budget("client address", self.settings.per_ip or "", self.per_ip, ("ip", client_address)))
        if self.per_principal is not None and authenticated:
            budgets.append(_Budget("principal", self.settings.per_principal or "", self.per_principal, ("principal", principal.identity)))
        if namespace is not None and namespace in self.per_namespace:
            caller = ("principal", principal.identity) if authenticated else ("ip", client_address or "unknown")
            budgets.append(
                _Budget(
                    f"caller in namespace '{namespace}'",
                    self.settings.namespaces[namespace],
                    self.per_namespace[namespace],
                    ("ns", namespace, *caller),
                )
            )
        return budgets

    async def check(self, principal: Principal, client_address: str | None, namespace: str | None = None) -> None:
        """Spend one request from every budget that applies; raise RateLimited when one is spent."""
        if not self.enabled:
            return
        budgets = self.budgets(principal, client_address, namespace)
        if not budgets:
            return
        if self._failing and (self._probing or time.monotonic() < self._retry_at):
            telemetry.rate_limit_failopen()
            return
        self._probing = self._failing
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                hits = await self._each(self.strategy.hit(b.item, *b.identifiers) for b in budgets)
                stats = await self._each(self.strategy.get_window_stats(b.item, *b.identifiers) for b in budgets)
        except STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            telemetry.rate_limit_failopen()
            return
        finally:
            self._probing = False
        self._storage_ok()
        telemetry.rate_limit_remaining(principal, min(s.remaining for s in stats))
        refused = [(budget, stat) for budget, hit, stat in zip(budgets, hits, stats, strict=False) if not hit]
        if refused:
            budget, stat = max(refused, key=lambda pair: pair[1].reset_time)
            retry_after = max(1, math.ceil(stat.reset_time - time.time()))
            raise RateLimited(budget.scope, budget.text, retry_after)

    async def _each(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """The storage calls' results: concurrent round trips to Redis; one after the other in
        memory, where each finishes without waiting and a task apiece would only cost."""
        if self.remote:
            return list(await asyncio.gather(*calls))
        return [await call for call in calls]

    def _storage_failed(self, exc: BaseException) -> None:
        cause = getattr(exc, "storage_error", None) or exc
        if not self._failing:
            log.warning(
                "rate limiting fails open: its storage is unreachable (%s: %s); requests pass unlimited until it is back",
                type(cause).__name__,
                cause,
            )
        self._failing = True
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    def _storage_ok(self) -> None:
        if self._failing:
            log.warning("rate limiting resumed: its storage answers again")
        self._failing = False
        self._backoff = BACKOFF_SECONDS

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            try:
                await client.aclose()
                await client.connection_pool.disconnect()
            except Exception:
                pass


def _item(text: str | None) -> RateLimitItem | None:
    return parse(text) if text else None
