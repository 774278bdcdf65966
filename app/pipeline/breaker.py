"""Circuit breakers: one per backend replica, so a sick replica stops costing every caller a
connect error or a timeout, and recovers by itself.

    closed ──(N consecutive failures, or error rate ≥ r over the window)──▶ open
    open ──(cool-down elapsed)──▶ half-open ──(a probe succeeds)──▶ closed
                                            └─(a probe fails)─────▶ open

Only failures of the backend itself count (it could not be reached, timed out, broke the
connection, answered HTTP 5xx); a JSON-RPC error or a tool error is the backend working. A call
takes a `Permit` before it goes out and reports its outcome on it; a permit taken in an earlier
state (a call that started before the circuit opened) reports into nothing, so stale outcomes
never flip a breaker.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from enum import Enum

from app import telemetry
from app.config import BreakerConfig
from app.core.jsonrpc import ErrorCode, GatewayError

log = logging.getLogger("mcp_gateway.breaker")


class State(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(GatewayError):
    """No replica of the namespace may be called now: every circuit is open. Raised before any
    I/O, so the client learns it at once."""

    def __init__(self, namespace: str, retry_after: float):
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"Backend for namespace '{namespace}' is unavailable: circuit breaker open (too many recent failures); retry in {seconds}s",
            data={"namespace": namespace, "circuit": State.OPEN.value, "retryAfterSeconds": seconds},
        )


class Permit:
    """One call's admission: report exactly one outcome (later reports are ignored)."""

    __slots__ = ("breaker", "done", "generation", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool):
        self.breaker = breaker
        self.generation = generation
        self.probe = probe
        self.done = False

    def success(self) -> None:
        self._settle(True)

    def failure(self) -> None:
        self._settle(False)

    def release(self) -> None:
        """No verdict (cancelled, or an outcome that says nothing about the backend's health)."""
        self._settle(None)

    def _settle(self, ok: bool | None) -> None:
        if not self.done:
            self.done = True
            self.breaker._settle(self, ok)


class CircuitBreaker:
    """The breaker of one replica. Not thread-safe: the gateway runs on one event loop."""

    def __init__(
        self,
        namespace: str,
        backend: str,
        settings: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.namespace = namespace
        self.backend = backend
        self.settings = settings or BreakerConfig()
        self.clock = clock
        #: Called after every state change (the gauge, a log line).
        self.on_change: Callable[[CircuitBreaker, State], None] | None = None
        self._state = State.CLOSED
        self._generation = 0
        self._opened_at = 0.0
        self._consecutive = 0
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._probes = 0

    # -- reading -------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The current state; an open circuit whose cool-down has passed is half-open."""
        if self._state is State.OPEN and self.clock() - self._opened_at >= self.settings.cooldown_seconds:
            self._enter(State.HALF_OPEN)
        return self._state

    @property
    def raw_state(self) -> State:
        """The state as last recorded (no lazy transition): for reporting."""
        return self._state

    def allows(self) -> bool:
        """Would `acquire()` succeed now? (Takes nothing.)"""
        state = self.state
        return state is State.CLOSED or (state is State.HALF_OPEN and self._probes < self.settings.half_open_probes)

    def retry_after(self) -> float:
        """Seconds until the circuit lets a call through again (0 when it does now)."""
        if self.allows():
            return 0.0
        if self._state is State.OPEN:
            return max(0.0, self.settings.cooldown_seconds - (self.clock() - self._opened_at))
        return 1.0  # Half-open with every probe slot taken: a probe answers within its timeout.

    def error_rate(self) -> float:
        self._prune()
        return self._failures / len(self._calls) if self._calls else 0.0

    # -- admission -----------------------------------------------------------------------------
    def acquire(self) -> Permit | None:
        """A permit for one call, or None when the circuit refuses it."""
        state = self.state
        if state is State.CLOSED:
            return Permit(self, self._generation, probe=False)
        if state is State.HALF_OPEN and self._probes < self.settings.half_open_probes:
            self._probes += 1
            return Permit(self, self._generation, probe=True)
        return None

    # -- outcomes ------------------------------------------------------------------------------
    def _settle(self, permit: Permit, ok: bool | None) -> None:
        if permit.generation != self._generation:
            return  # Admitted in an earlier state: says nothing about this one.
        if permit.probe:
            self._probes = max(0, self._probes - 1)
            if ok is True:
                self._enter(State.CLOSED)
            elif ok is False:
                self._enter(State.OPEN)
            return
        if ok is None or self._state is not State.CLOSED:
            return
        now = self.clock()
        self._calls.append((now, ok))
        if ok:
            self._consecutive = 0
        else:
            self._consecutive += 1
            self._failures += 1
        self._prune(now)
        settings = self.settings
        rate_tripped = len(self._calls) >= settings.min_calls and self._failures / len(self._calls) >= settings.error_rate
        if self._consecutive >= settings.failure_threshold or rate_tripped:
            self._enter(State.OPEN)

    def _prune(self, now: float | None = None) -> None:
        horizon = (self.clock() if now is None else now) - self.settings.window_seconds
        while self._calls and self._calls[0][0] < horizon:
            _, ok = self._calls.popleft()
            if not ok:
                self._failures -= 1

    def _enter(self, state: State) -> None:
        previous = self._state
        self._state = state
        self._generation += 1
        self._probes = 0
        if state is State.OPEN:
            self._opened_at = self.clock()
        if state is State.CLOSED:
            self._consecutive = 0
            self._calls.clear()
            self._failures = 0
        if state is not previous and self.on_change is not None:
            self.on_change(self, previous)


def state_counts(breakers: Iterable[CircuitBreaker]) -> dict[str, int]:
    """How many replicas are in each state (every state present, zeros included)."""
    counts = {state.value: 0 for state in State}
    for breaker in breakers:
        counts[breaker.raw_state.value] += 1
    return counts


def report_states(namespace: str, breakers: list[CircuitBreaker]) -> None:
    """Report the states of a namespace's breakers (gauge, log) now and on every change."""

    def changed(breaker: CircuitBreaker, previous: State) -> None:
        level = logging.WARNING if breaker.raw_state is State.OPEN else logging.INFO
        log.log(
            level,
            "circuit breaker %s -> %s",
            previous.value,
            breaker.raw_state.value,
            extra={"namespace": namespace, "backend": breaker.backend, "circuit": breaker.raw_state.value},
        )
        telemetry.breaker_states(namespace, state_counts(breakers))

    for breaker in breakers:
        breaker.on_change = changed
    telemetry.breaker_states(namespace, state_counts(breakers))
