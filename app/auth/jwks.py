"""A JWKS fetched over HTTP, cached, and refreshed when it expires or a token names a key it does
not hold.

The identity provider is not trusted to be up or fast. Every fetch attempt, failed or not, advances
the refresh clock, so tokens naming unknown `kid`s cannot make the gateway fetch more than once per
`min_refresh` seconds. An expired cache is refreshed in the background while the last good keys keep
verifying tokens, so a hanging endpoint never stalls requests whose key the cache already holds.
Only a token whose key is missing waits, on the one shared fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import jwt

log = logging.getLogger("mcp_gateway.auth")

FETCH_ERRORS = (httpx.HTTPError, jwt.PyJWTError, ValueError)


class JwksUnavailable(Exception):
    """No signing keys are held and none could be fetched (now, or recently enough to retry)."""


class JwksCache:
    def __init__(self, url: str, ttl_seconds: float, min_refresh_seconds: float):
        self.url = url
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        except FETCH_ERRORS as exc:
            # The URL is not logged: identity providers sometimes put credentials in it.
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.warning(
                "JWKS refresh failed; keeping the last good keys",
                extra={"error": f"HTTP {status}" if status else type(exc).__name__, "keys": len(self._keys)},
            )
            raise
        finally:
            self._attempted_at = time.monotonic()
        self._keys = {key.key_id: key for key in keyset.keys if key.key_id}
        self._fetched_at = time.monotonic()

    def _refresh(self) -> asyncio.Task[None] | None:
        """The fetch in flight, or a new one when the refresh clock allows it; None otherwise."""
        if self._refreshing is None and time.monotonic() - self._attempted_at >= self.min_refresh:
            self._attempted_at = time.monotonic()
            self._refreshing = asyncio.create_task(self._fetch())
            self._refreshing.add_done_callback(self._finished)
        return self._refreshing

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # Already logged; retrieved so asyncio does not report it again.

    def _holds(self, kid: str | None) -> bool:
        return (len(self._keys) == 1) if kid is None else kid in self._keys

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key named `kid` (or the only key when the token names none); None when the
        key set does not hold it. Raises JwksUnavailable when no keys were ever fetched."""
        if not self._holds(kid):
            fetch = self._refresh()
            if fetch is not None:
                try:
                    await asyncio.shield(fetch)
                except FETCH_ERRORS:
                    pass
        elif time.monotonic() - self._fetched_at > self.ttl:
            self._refresh()  # In the background: the keys held keep serving meanwhile.
        if not self._keys:
            raise JwksUnavailable("signing keys unavailable")
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        await self._client.aclose()
