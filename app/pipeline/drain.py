"""Graceful shutdown: stop being ready, finish what is in flight, close long-lived streams, exit.

Platforms send SIGTERM and keep routing to the instance for a few seconds; a draining gateway
still serves requests that arrive (so none is dropped), answers /readyz with 503 so it leaves the
rotation, asks WebSocket connections and standalone SSE streams to close once their in-flight
calls are answered, and lets the process exit when nothing is in flight or the drain deadline
passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("mcp_gateway.drain")


class Drain:
    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closers: set[Callable[[], None]] = set()

    @property
    def draining(self) -> bool:
        return self.stopping.is_set()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Count one request in flight for as long as it runs (a streamed answer included)."""
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    def on_stop(self, close: Callable[[], None]) -> Callable[[], None]:
        """Register a long-lived stream's closer; returns the function that unregisters it."""
        self._closers.add(close)
        return lambda: self._closers.discard(close)

    async def run(self, timeout: float) -> bool:
        """Drain; True when everything finished in time."""
        self.stopping.set()
        log.info("draining", extra={"in_flight": self.in_flight, "streams": len(self._closers)})
        for close in list(self._closers):
            close()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            log.warning("drain deadline passed with requests in flight", extra={"in_flight": self.in_flight})
            return False
