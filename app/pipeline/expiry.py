"""Ending the upstream sessions of gateway sessions that expired.

A gateway session that is never ended (the client went away without HTTP DELETE) would keep its
upstream sessions open on the backends for as long as they allow, and a backend that caps its
sessions would then refuse everyone else. Every replica sweeps the store periodically; the store
hands each expired session to exactly one sweeper (in Redis: whoever removes it from the
`mcpgw:sessions` index), which ends its upstream sessions with HTTP DELETE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.core.jsonrpc import GatewayError
from app.state import SessionRecord, StateStore

log = logging.getLogger("mcp_gateway.sessions")

#: Seconds between sweeps: how long an expired session's upstream sessions may outlive it.
SWEEP_SECONDS = 5.0
#: Expired sessions claimed per store round trip.
BATCH = 100


class ExpirySweeper:
    def __init__(self, store: StateStore, on_expired: Callable[[SessionRecord], Awaitable[None]], interval: float = SWEEP_SECONDS):
        self.store = store
        self.on_expired = on_expired
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="session-expiry")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except GatewayError as exc:  # The store is unreachable: the next sweep tries again.
                log.info("session expiry sweep skipped: %s", exc.message)
            except Exception as exc:  # A bad record must not stop every later sweep.
                log.warning("session expiry sweep failed: %s", type(exc).__name__)

    async def sweep(self) -> int:
        """End every session that has expired; return how many."""
        ended = 0
        while True:
            records = await self.store.take_expired(BATCH)
            await asyncio.gather(*(self._end(record) for record in records))
            ended += len(records)
            if len(records) < BATCH:
                return ended

    async def _end(self, record: SessionRecord) -> None:
        log.info("session expired; ending its upstream sessions", extra={"session_id": record.id, "namespaces": sorted(record.upstreams)})
        await self.on_expired(record)
