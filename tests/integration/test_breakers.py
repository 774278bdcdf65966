"""Circuit breakers and timeouts: a sick replica is cut off quickly, calls go to a healthy one or
fail at once with an error naming the namespace, and the circuit closes by itself when the
replica is back. The state machine is tested on its own with a fake clock; everything else with
real backend processes that are killed, restarted, or answer HTTP 500."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.config import BreakerConfig, parse_config
from app.pipeline.breaker import CircuitBreaker, CircuitOpen, State, state_counts
from tests.support import Backend, GatewayProc, http_status, stdio_command, wait_until
from tests.support.guard import (
    call_tool,
    kill,
    metric,
    metrics_env,
    new_session,
    start_flaky,
    start_together,
    text_of,
)

# -- the state machine ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(**settings: Any) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    defaults: dict[str, Any] = {
        "failure_threshold": 3,
        "error_rate": 0.5,
        "window_seconds": 10,
        "min_calls": 10,
        "cooldown_seconds": 5,
        "half_open_probes": 1,
    }
    return CircuitBreaker("ns", "ns-1", BreakerConfig(**{**defaults, **settings}), clock), clock


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = b.acquire()
        assert permit is not None
        permit.failure()


def succeed(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = b.acquire()
        assert permit is not None
        permit.success()


def test_consecutive_failures_open_the_circuit() -> None:
    b, _ = breaker()
    fail(b, 2)
    succeed(b)  # A success resets the run.
    fail(b, 2)
    assert b.state is State.CLOSED
    fail(b)
    assert b.state is State.OPEN and b.acquire() is None and not b.allows()
    assert 4.9 < b.retry_after() <= 5


def test_an_error_rate_over_the_window_opens_the_circuit() -> None:
    b, clock = breaker(failure_threshold=100, min_calls=10, error_rate=0.5)
    for _ in range(4):  # 8 calls, half failing, never two failures in a row: below min_calls.
        succeed(b)
        fail(b)
    assert b.state is State.CLOSED
    succeed(b)
    fail(b)  # 10 calls, 5 failures: 50 %.
    assert b.state is State.OPEN

    b, clock = breaker(failure_threshold=100, min_calls=4, window_seconds=10)
    fail(b, 2)
    clock.now += 11  # Those failures leave the window.
    succeed(b, 2)
    fail(b)
    assert b.state is State.CLOSED and b.error_rate() == pytest.approx(1 / 3)


def test_half_open_lets_a_bounded_number_of_probes_through() -> None:
    b, clock = breaker(half_open_probes=2)
    fail(b, 3)
    clock.now += 4.9
    assert b.state is State.OPEN
    clock.now += 0.2
    assert b.state is State.HALF_OPEN
    first, second = b.acquire(), b.acquire()
    assert first is not None and second is not None and b.acquire() is None
    first.release()  # A probe that says nothing (cancelled) frees its slot.
    third = b.acquire()
    assert third is not None
    third.success()
    assert b.state is State.CLOSED
    second.failure()  # Settled after the state changed: ignored.
    assert b.state is State.CLOSED


def test_a_failed_probe_reopens_for_a_new_cooldown() -> None:
    b, clock = breaker()
    fail(b, 3)
    clock.now += 5
    probe = b.acquire()
    assert probe is not None and probe.probe
    probe.failure()
    assert b.state is State.OPEN
    clock.now += 4
    assert b.state is State.OPEN
    clock.now += 1
    assert b.state is State.HALF_OPEN


def test_outcomes_of_calls_admitted_before_the_circuit_opened_are_ignored() -> None:
    b, clock = breaker()
    early = b.acquire()
    assert early is not None
    fail(b, 3)
    clock.now += 5
    assert b.state is State.HALF_OPEN
    early.success()  # A slow call from before: it must not close the circuit.
    assert b.state is State.HALF_OPEN
    early.failure()  # Nor count twice.


def test_state_changes_are_reported_and_counted() -> None:
    b, clock = breaker()
    seen: list[tuple[str, str]] = []
    b.on_change = lambda changed, previous: seen.append((previous.value, changed.raw_state.value))
    fail(b, 3)
    clock.now += 5
    succeed(b)
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    other, _ = breaker()
    fail(other, 3)
    assert state_counts([b, other]) == {"closed": 1, "open": 1, "half_open": 0}


def test_the_circuit_open_error_names_the_namespace() -> None:
    error = CircuitOpen("weather", 2.2)
    assert error.to_error() == {
        "code": -32050,
        "message": "Backend for namespace 'weather' is unavailable: circuit breaker open (too many recent failures); retry in 3s",
        "data": {"namespace": "weather", "circuit": "open", "retryAfterSeconds": 3},
    }


def test_breaker_and_timeout_settings_are_validated_with_their_keys() -> None:
    from app.config import ConfigError

    namespaces = {
        "a": {
            "timeout_seconds": 2,
            "backends": [
                {"name": "a-1", "url": "http://127.0.0.1:1/mcp"},
                {"name": "a-2", "url": "http://127.0.0.1:2/mcp", "timeout_seconds": 7},
            ],
        }
    }
    config = parse_config({"namespaces": namespaces})
    ns = config.namespaces["a"]
    assert [ns.effective(b).timeout_seconds for b in ns.backends] == [2, 7]  # The replica's own wins.
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "breaker": {"failure_threshold": 0, "error_rate": 1.5, "cooldown": 3},
                "namespaces": {**namespaces, "b": {"timeout_seconds": -1, "backends": [{"name": "b-1", "url": "http://127.0.0.1:3/mcp"}]}},
            }
        )
    problems = "\n".join(caught.value.problems)
    for key in ("breaker.failure_threshold", "breaker.error_rate", "breaker.cooldown: unknown key", "namespaces.b.timeout_seconds"):
        assert key in problems, problems


# -- real processes ---------------------------------------------------------------------------------

BREAKER = {"failure_threshold": 3, "error_rate": 0.5, "window_seconds": 30, "min_calls": 100, "cooldown_seconds": 2, "half_open_probes": 1}
FAST_HEALTH = {"interval_seconds": 0.3, "timeout_seconds": 2}
NO_LIMITS = {"enabled": False}


def circuit_open(message: dict[str, Any], namespace: str) -> bool:
    error = message.get("error") or {}
    return (
        error.get("code") == -32050
        and "circuit breaker open" in error.get("message", "")
        and error.get("data", {}).get("namespace") == namespace
    )


@dataclass
class Traffic:
    """Calls in a loop on a thread, every outcome recorded with its client-side latency."""

    call: Callable[[], dict[str, Any]]
    outcomes: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            message = self.call()
            self.outcomes.append((time.monotonic(), time.perf_counter() - started, message))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_killed_backend_opens_its_circuit_fails_fast_and_recovers_by_itself(
    transport: str, backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]
) -> None:
    victim = backend(f"victim-{transport}", transport)
    metrics_port, env = metrics_env()
    gw = gateway(
        {
            "breaker": BREAKER,
            "health_checks": FAST_HEALTH,
            "rate_limits": NO_LIMITS,
            "namespaces": {
                "victim": {"backends": [{"name": "victim-1", "url": victim.url}]},
                "bystander": {"backends": [{"name": "bystander-1", "command": stdio_command("bystander")}]},
            },
        },
        env,
    )
    victim_session, bystander_session = new_session(gw.url), new_session(gw.url)
    traffic = Traffic(lambda: call_tool(victim_session, "victim__echo", {"text": "hi"}))
    others = Traffic(lambda: call_tool(bystander_session, "bystander__echo", {"text": "still here"}))
    try:
        wait_until(lambda: len(traffic.outcomes) >= 5, timeout=15, message="victim traffic flowing")
        assert all("result" in m for _, _, m in traffic.outcomes)
        killed_at = time.monotonic()
        kill(victim.proc)
        wait_until(lambda: sum(circuit_open(m, "victim") for _, _, m in traffic.outcomes) >= 20, timeout=15, message="circuit open errors")
    finally:
        traffic.finish()
        others.finish()

    after_kill = [m for at, _, m in traffic.outcomes if at > killed_at]
    first_open = next(i for i, m in enumerate(after_kill) if circuit_open(m, "victim"))
    failures = [m for m in after_kill[:first_open] if "error" in m]
    # Every failure before the circuit opened names the namespace; there are at most the threshold.
    assert 1 <= len(failures) <= BREAKER["failure_threshold"], failures
    assert all(m["error"]["code"] == -32050 and m["error"]["data"]["namespace"] == "victim" for m in failures), failures
    # Once open, it stays open (cool-down) and every call fails fast, measured by the client.
    fast = [latency for _, latency, m in traffic.outcomes if circuit_open(m, "victim")]
    assert statistics.median(fast) < 0.05, fast
    # The other namespace never noticed.
    assert others.outcomes and all(text_of(m) == "still here" for _, _, m in others.outcomes)
    assert metric(metrics_port, "mcp_gateway_circuit_breaker_state", namespace="victim", state="open") == 1
    assert metric(metrics_port, "mcp_gateway_circuit_breaker_state", namespace="bystander", state="closed") == 1

    # Measured once more on their own, without the other threads' traffic.
    quiet = []
    for _ in range(10):
        started = time.perf_counter()
        answer = call_tool(victim_session, "victim__echo", {"text": "x"})
        quiet.append(time.perf_counter() - started)
        assert circuit_open(answer, "victim"), answer
    assert statistics.median(quiet) < 0.05 and sum(t < 0.05 for t in quiet) >= 9, quiet

    # Back on the same port: the health check's probe closes the circuit, no client call needed.
    victim.proc.start()
    ready = (lambda: http_status(victim.url) is not None) if transport == "http" else (lambda: _accepts(victim.url))
    victim.proc.wait_ready(ready, 15, "victim restarted")
    wait_until(
        lambda: metric(metrics_port, "mcp_gateway_circuit_breaker_state", namespace="victim", state="closed") == 1,
        timeout=15,
        message="victim's circuit closed again",
    )
    assert "circuit breaker half_open -> closed" in gw.read_log()
    assert text_of(call_tool(victim_session, "victim__echo", {"text": "back"})) == "back"


def _accepts(url: str) -> bool:
    from urllib.parse import urlsplit

    from tests.support import tcp_accepts

    parts = urlsplit(url)
    return tcp_accepts(parts.hostname or "", parts.port or 0)


def test_with_one_replica_killed_calls_keep_succeeding_on_the_other(
    backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]
) -> None:
    first, second = start_together(lambda: backend("pair-a"), lambda: backend("pair-b"))
    gw = gateway(
        {
            "breaker": BREAKER,
            "health_checks": FAST_HEALTH,
            "rate_limits": NO_LIMITS,
            "namespaces": {"pair": {"backends": [{"name": "pair-a", "url": first.url}, {"name": "pair-b", "url": second.url}]}},
        }
    )
    sessions = [new_session(gw.url) for _ in range(6)]
    homes = [text_of(call_tool(s, "pair__whoami")) for s in sessions]
    assert set(homes) == {"pair-a", "pair-b"}, homes  # Sessions spread over both replicas.

    kill(first.proc)
    for round_ in range(3):
        for session in sessions:
            answer = call_tool(session, "pair__echo", {"text": f"round {round_}"})
            assert text_of(answer) == f"round {round_}", answer
            assert text_of(call_tool(session, "pair__whoami")) == "pair-b"
    assert "pair-a" not in {text_of(call_tool(new_session(gw.url), "pair__whoami")) for _ in range(4)}


@pytest.fixture
def flaky_pair(tmp_path: Path, backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]) -> Any:
    """`flaky_pair(threshold)`: namespace `duo` with one replica answering HTTP 500 (but `ping`
    fine) and one healthy, breakers opening after `threshold` consecutive failures."""
    started: list[Any] = []

    def start(threshold: int) -> tuple[GatewayProc, Any]:
        good, flaky = start_together(lambda: backend("good"), lambda: start_flaky(tmp_path))
        started.append(flaky)
        gw = gateway(
            {
                "breaker": {**BREAKER, "failure_threshold": threshold, "cooldown_seconds": 60},
                "rate_limits": NO_LIMITS,
                "namespaces": {
                    "duo": {
                        "balance": "round_robin",
                        "backends": [{"name": "flaky-1", "url": flaky.url}, {"name": "good-1", "url": good.url}],
                    },
                    "side": {"backends": [{"name": "side-1", "command": stdio_command("side")}]},
                },
            }
        )
        return gw, flaky

    yield start
    for flaky in started:
        flaky.proc.stop()


def _session_on_flaky(gw: GatewayProc) -> Any:
    """A session whose `duo` upstream session lives on the flaky replica (its calls get HTTP 500)."""
    for _ in range(8):
        session = new_session(gw.url)
        answer = call_tool(session, "duo__whoami")
        if "error" in answer:
            assert answer["error"]["code"] == -32050 and "HTTP 500" in answer["error"]["message"], answer
            return session
    pytest.fail("no session landed on the flaky replica")


def test_a_read_retries_once_on_another_replica_but_a_tool_call_is_never_resent(flaky_pair: Any) -> None:
    gw, flaky = flaky_pair(threshold=100)
    session = _session_on_flaky(gw)
    calls_before = flaky.counts().get("tools/call", 0)
    answer = call_tool(session, "duo__echo", {"text": "once"})
    assert answer["error"]["code"] == -32050 and answer["error"]["data"]["namespace"] == "duo", answer
    assert flaky.counts()["tools/call"] == calls_before + 1  # Sent once, failed, not sent again.

    lists_before = flaky.counts().get("tools/list", 0)
    listed = session.call("tools/list")
    assert "duo__echo" in {tool["name"] for tool in listed["result"]["tools"]}, listed  # Served by the healthy replica.
    assert flaky.counts()["tools/list"] == lists_before + 1  # One attempt there, then the other replica.
    assert "retrying once on another replica" in gw.read_log()


def test_an_open_circuit_moves_a_bound_session_to_another_replica(flaky_pair: Any) -> None:
    gw, flaky = flaky_pair(threshold=2)
    session = _session_on_flaky(gw)  # One HTTP 500 so far on this replica.
    assert "error" in call_tool(session, "duo__echo", {"text": "x"})  # The second: the circuit opens.
    sent = flaky.counts()["tools/call"]
    # The session's upstream session is on the open replica: it moves, and the call succeeds
    # without reaching the sick replica at all.
    assert text_of(call_tool(session, "duo__whoami")) == "good"
    assert text_of(call_tool(session, "duo__echo", {"text": "moved"})) == "moved"
    assert flaky.counts()["tools/call"] == sent
    assert "circuit open: moving the session to another replica" in gw.read_log()


def test_every_replica_open_fails_fast_naming_the_namespace(tmp_path: Path, gateway: Callable[..., GatewayProc]) -> None:
    flaky = start_flaky(tmp_path)
    try:
        gw = gateway(
            {
                "breaker": {**BREAKER, "failure_threshold": 2, "cooldown_seconds": 60},
                "rate_limits": NO_LIMITS,
                "namespaces": {
                    "sick": {"backends": [{"name": "sick-1", "url": flaky.url}]},
                    "side": {"backends": [{"name": "side-1", "command": stdio_command("side")}]},
                },
            }
        )
        session = new_session(gw.url)
        for _ in range(2):
            assert "HTTP 500" in call_tool(session, "sick__echo", {"text": "x"})["error"]["message"]
        sent = flaky.counts()["tools/call"]
        answer = call_tool(session, "sick__echo", {"text": "x"})
        assert circuit_open(answer, "sick"), answer
        assert 1 <= answer["error"]["data"]["retryAfterSeconds"] <= 60
        assert flaky.counts()["tools/call"] == sent
        # A list leaves the sick namespace out instead of failing: the others still show.
        tools = {tool["name"] for tool in session.call("tools/list")["result"]["tools"]}
        assert "side__echo" in tools and not any(name.startswith("sick__") for name in tools)
    finally:
        flaky.proc.stop()


def test_tool_errors_and_json_rpc_errors_do_not_open_the_circuit(
    backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]
) -> None:
    server = backend("tolerant")
    gw = gateway(
        {
            "breaker": {**BREAKER, "failure_threshold": 2},
            "rate_limits": NO_LIMITS,
            "namespaces": {"t": {"backends": [{"name": "t-1", "url": server.url}]}},
        }
    )
    session = new_session(gw.url)
    for _ in range(3):
        assert call_tool(session, "t__fail", {"message": "nope"})["result"]["isError"]  # A tool error.
        wrong = session.call("resources/read", {"uri": "info://no-such-server"})  # A JSON-RPC error.
        assert "error" in wrong, wrong
    assert text_of(call_tool(session, "t__echo", {"text": "fine"})) == "fine"
    assert "-> open" not in gw.read_log()


# -- timeouts ---------------------------------------------------------------------------------------


def test_namespace_timeout_applies_unless_the_replica_sets_its_own(
    backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]
) -> None:
    server = backend("sloth")
    gw = gateway(
        {
            "rate_limits": NO_LIMITS,
            "namespaces": {
                "quick": {"timeout_seconds": 1, "backends": [{"name": "quick-1", "url": server.url}]},
                "patient": {"timeout_seconds": 1, "backends": [{"name": "patient-1", "url": server.url, "timeout_seconds": 4}]},
            },
        }
    )
    session = new_session(gw.url)
    started = time.monotonic()
    answer = call_tool(session, "quick__slow", {"seconds": 5})
    elapsed = time.monotonic() - started
    assert answer["error"]["code"] == -32051 and answer["error"]["data"]["namespace"] == "quick", answer
    assert 0.9 <= elapsed < 3.5, elapsed
    assert text_of(call_tool(session, "patient__slow", {"seconds": 2})) == "done"
