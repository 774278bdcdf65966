"""One replica of a namespace as the pipeline sees it: its MCP client, its circuit breaker and its
health. The client (`app.backends`) only speaks MCP; everything the pipeline decides about the
replica (may it be called, is it down, how busy is it) lives here, written by the pipeline alone."""

from __future__ import annotations

import time

from app.backends import Backend, create_backend
from app.config import BreakerConfig, NamespaceConfig
from app.pipeline.breaker import CircuitBreaker, report_states


class Replica:
    """A backend replica: the client, the breaker it was built with, and what the pipeline knows."""

    def __init__(self, client: Backend, breaker: CircuitBreaker):
        self.client = client
        self.breaker = breaker
        #: Calls under way on this replica (least-in-flight balancing).
        self.in_flight = 0
        #: Monotonic time before which the replica is not tried first (it refused a connection).
        self.down_until = 0.0
        #: Did the last exchange with this replica succeed? None until the first one.
        self.healthy: bool | None = None

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def namespace(self) -> str:
        return self.client.namespace

    @property
    def shared_session(self) -> bool:
        """One upstream session serves every gateway session (stdio, WebSocket)."""
        return self.client.shared_session

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds
        self.healthy = False


def build_replicas(namespace: str, config: NamespaceConfig, breaker: BreakerConfig) -> list[Replica]:
    """The replicas of a configured namespace, each with its client and a breaker of the configured
    settings; the breakers' states are reported (gauge, log) now and on every change."""
    replicas = [
        Replica(create_backend(namespace, config.effective(b)), CircuitBreaker(namespace, b.name, breaker)) for b in config.backends
    ]
    report_states(namespace, [r.breaker for r in replicas])
    return replicas
