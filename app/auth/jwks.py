"""A JWKS fetched over HTTP, cached, and refreshed when a token names a key it does not hold."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

class JwksCache:
    def __init__(self, url: str, ttl_seconds: float, min_refresh_seconds: float):
        self.url = url
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)

    async def _refresh(self) -> None:
        response = await self._client.get(self.url)
        response.raise_for_status()
        keyset = jwt.PyJWKSet.from_dict(response.json())
        self._keys = {key.key_id: key for key in keyset.keys if key.key_id}
        self._fetched_at = time.monotonic()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key named `kid` (or the only key when the token names none)."""
        age = time.monotonic() - self._fetched_at
        if age > self.ttl or (kid not in self._keys and age >= self.min_refresh):
            async with self._lock:
                if time.monotonic() - self._fetched_at >= self.min_refresh or not self._keys:
                    try:
                        await self._refresh()
                    except (httpx.HTTPError, jwt.PyJWTError, ValueError):
                        if not self._keys:
                            raise
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def close(self) -> None:
        await self._client.aclose()
