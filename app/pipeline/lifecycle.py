"""Starting and stopping the pipeline's own work: the replicas' clients, start-up discovery, health
checks and the session-expiry sweeper. Ready once discovery has run."""

from __future__ import annotations

import asyncio

from app.pipeline.discovery import Discovery
from app.pipeline.expiry import ExpirySweeper
from app.pipeline.health_checks import HealthChecker
from app.pipeline.replica import Replica


class Lifecycle:
    def __init__(self, replicas: list[Replica], discovery: Discovery, health_checks: HealthChecker, expiry: ExpirySweeper):
        self.replicas = replicas
        self.discovery = discovery
        self.health_checks = health_checks
        self.expiry = expiry
        self.ready = False

    async def start(self, discovery_timeout: float = 10.0) -> None:
        """Learn each namespace's capabilities (one replica each) so `initialize` can merge them."""
        await asyncio.gather(*(r.client.start() for r in self.replicas))
        await self.discovery.run(discovery_timeout)
        self.health_checks.start()
        self.expiry.start()
        self.ready = True

    async def close(self) -> None:
        await self.expiry.close()
        await self.health_checks.close()
        await asyncio.gather(*(r.client.close() for r in self.replicas), return_exceptions=True)
