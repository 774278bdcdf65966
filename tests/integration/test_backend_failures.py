"""Sick backends: unreachable, slow, killed, restarted, or one replica of several down. The
client gets a clear JSON-RPC error naming the namespace, and the gateway and every other
session carry on."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import (
    Backend,
    GatewayProc,
    free_port,
    http_status,
    start_backend,
    start_gateway,
    stdio_command,
    wait_until,
    wait_until_async,
)
from tests.support.mcp_http import RawSession, messages, parse_sse
from tests.support.process import stdio_backend_pids


def closed_port_url(scheme: str = "http") -> str:
    """An MCP URL on a loopback port nothing listens on."""
    return f"{scheme}://127.0.0.1:{free_port()}/mcp"


@dataclass
class Stack:
    url: str
    gateway: GatewayProc


#: Namespaces whose only backend cannot be reached, and how.
UNREACHABLE = {
    "dead_http": {"name": "dead-http-1", "url": closed_port_url()},
    "dead_ws": {"name": "dead-ws-1", "url": closed_port_url("ws")},
    "dead_cmd": {"name": "dead-cmd-1", "command": ["/nonexistent/mcp-server"]},
    "dead_exit": {"name": "dead-exit-1", "command": [sys.executable, "-c", "pass"]},
}
TIMEOUT_NAMESPACES = ("slow_http", "slow_ws", "slow_stdio")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("failures")
    specs = (("slow-http", "http"), ("slow-ws", "ws"), ("pair-live", "http"), ("duo-a", "http"), ("duo-b", "http"))
    with ThreadPoolExecutor(len(specs)) as pool:  # Independent processes: start them side by side.
        futures = {name: pool.submit(start_backend, name, workdir, transport) for name, transport in specs}
    backends = {name: future.result() for name, future in futures.items() if future.exception() is None}
    try:
        if len(backends) < len(specs):
            raise next(f.exception() for f in futures.values() if f.exception() is not None)  # type: ignore[misc]
        url = lambda name: backends[name].url  # noqa: E731
        namespaces: dict[str, Any] = {
            "ok": {"backends": [{"name": "ok-1", "command": stdio_command("ok")}]},
            **{ns: {"backends": [backend]} for ns, backend in UNREACHABLE.items()},
            "slow_http": {"backends": [{"name": "slow-http-1", "url": url("slow-http"), "timeout_seconds": 1}]},
            "slow_ws": {"backends": [{"name": "slow-ws-1", "url": url("slow-ws"), "timeout_seconds": 1}]},
            "slow_stdio": {"backends": [{"name": "slow-stdio-1", "command": stdio_command("slow-stdio"), "timeout_seconds": 1}]},
            "pair": {"backends": [{"name": "pair-dead", "url": closed_port_url()}, {"name": "pair-live", "url": url("pair-live")}]},
            "duo": {"backends": [{"name": "duo-a", "url": url("duo-a")}, {"name": "duo-b", "url": url("duo-b")}]},
            "duo_rr": {
                "balance": "round_robin",
                "backends": [{"name": "rr-a", "url": url("duo-a")}, {"name": "rr-b", "url": url("duo-b")}],
            },
        }
        gateway = start_gateway({"namespaces": namespaces}, workdir)
    except BaseException:
        for backend in backends.values():
            backend.proc.stop()
        raise
    yield Stack(gateway.url, gateway)
    for proc in (gateway.proc, *(b.proc for b in backends.values())):
        proc.stop()


def new_session(base: str, capabilities: dict[str, Any] | None = None) -> RawSession:
    raw = RawSession(base)
    raw.initialize(capabilities)
    return raw


@pytest.fixture
def session(stack: Stack) -> Iterator[RawSession]:
    raw = new_session(stack.url)
    yield raw
    raw.close()


def answer(session: RawSession, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The final message of a request, whatever the HTTP status that carried it."""
    response = session.request(method, params)
    assert response.headers.get("content-type", "").startswith(("application/json", "text/event-stream")), response.text
    return messages(response)[-1]


def call_tool(session: RawSession, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return answer(session, "tools/call", {"name": name, "arguments": arguments or {}})


def text_of(message: dict[str, Any]) -> str:
    assert "result" in message and not message["result"].get("isError"), message
    return message["result"]["content"][0]["text"]


def assert_names_namespace(message: dict[str, Any], namespace: str, code: int) -> None:
    assert "error" in message, message
    error = message["error"]
    assert error["code"] == code, error
    assert f"'{namespace}'" in error["message"], error
    assert error.get("data", {}).get("namespace") == namespace, error


def health(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/health", timeout=5).json()


# -- unreachable ----------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", list(UNREACHABLE))
def test_unreachable_backend_is_an_error_naming_the_namespace(stack: Stack, namespace: str) -> None:
    bystander = new_session(stack.url)
    victim = new_session(stack.url)
    try:
        assert text_of(call_tool(bystander, "ok__echo", {"text": "before"})) == "before"
        started = time.monotonic()
        failed = call_tool(victim, f"{namespace}__echo", {"text": "x"})
        assert time.monotonic() - started < 10
        assert_names_namespace(failed, namespace, -32050)
        # The same session goes on with the healthy namespaces; so do the others.
        assert text_of(call_tool(victim, "ok__echo", {"text": "victim"})) == "victim"
        assert text_of(call_tool(bystander, "ok__echo", {"text": "after"})) == "after"
        # It fails the same clear way again: nothing is stuck half-open.
        assert_names_namespace(call_tool(victim, f"{namespace}__echo", {"text": "x"}), namespace, -32050)
    finally:
        bystander.close()
        victim.close()
    report = health(stack.url)
    assert report["status"] == "degraded"
    assert report["backends"][namespace] == "unhealthy" and report["backends"]["ok"] == "healthy"


def test_unreachable_backends_do_not_hide_the_others_from_lists(session: RawSession) -> None:
    tools = {tool["name"] for tool in answer(session, "tools/list", {})["result"]["tools"]}
    assert {"ok__echo", "slow_http__echo", "pair__echo", "duo__echo"} <= tools
    assert not any(name.startswith("dead_") for name in tools)


# -- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", TIMEOUT_NAMESPACES)
def test_backend_timeout_is_an_error_naming_the_namespace(session: RawSession, namespace: str) -> None:
    started = time.monotonic()
    failed = call_tool(session, f"{namespace}__slow", {"seconds": 5})
    elapsed = time.monotonic() - started
    assert_names_namespace(failed, namespace, -32051)
    assert 0.9 <= elapsed < 4, f"timed out after {elapsed:.2f}s; configured 1s"
    # The next call on the same session, to the same backend, works.
    assert text_of(call_tool(session, f"{namespace}__echo", {"text": "next"})) == "next"
    assert text_of(call_tool(session, f"{namespace}__slow", {"seconds": 0.1})) == "done"


def test_a_timeout_does_not_hold_up_other_sessions(stack: Stack, session: RawSession) -> None:
    finished: dict[str, float] = {}

    def slow_call() -> dict[str, Any]:
        try:
            return call_tool(session, "slow_http__slow", {"seconds": 5})
        finally:
            finished["slow"] = time.monotonic()

    other = new_session(stack.url)
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(slow_call)
            # Meanwhile another session calls the same backend, and is answered before the
            # stuck call gives up.
            assert text_of(call_tool(other, "slow_http__echo", {"text": "meanwhile"})) == "meanwhile"
            finished["other"] = time.monotonic()
            assert_names_namespace(slow.result(timeout=10), "slow_http", -32051)
    finally:
        other.close()
    assert finished["other"] < finished["slow"]


# -- replicas -------------------------------------------------------------------------------------


def test_a_dead_replica_is_skipped(stack: Stack) -> None:
    for _ in range(4):
        raw = new_session(stack.url)
        try:
            assert text_of(call_tool(raw, "pair__whoami")) == "pair-live"
            assert text_of(call_tool(raw, "pair__echo", {"text": "again"})) == "again"
        finally:
            raw.close()
    assert health(stack.url)["backends"]["pair"] == "degraded"


@pytest.mark.parametrize(
    ("namespace", "replicas"), [("duo", {"duo-a", "duo-b"}), ("duo_rr", {"duo-a", "duo-b"})], ids=["least_inflight", "round_robin"]
)
def test_sessions_are_spread_across_live_replicas(stack: Stack, namespace: str, replicas: set[str]) -> None:
    seen: list[str] = []
    for _ in range(6):
        raw = new_session(stack.url)
        try:
            first = text_of(call_tool(raw, f"{namespace}__whoami"))
            # A session stays on its replica (its upstream session lives there).
            assert all(text_of(call_tool(raw, f"{namespace}__whoami")) == first for _ in range(2))
            seen.append(first)
        finally:
            raw.close()
    assert set(seen) == replicas, seen


# -- stdio process killed -------------------------------------------------------------------------


def wait_for_pid(name: str, gateway: GatewayProc, other_than: int | None = None) -> int:
    def one() -> int | None:
        pids = [pid for pid in stdio_backend_pids(name, gateway.proc.pid or -1) if pid != other_than]
        return pids[0] if len(pids) == 1 else None

    return wait_until(one, timeout=10, message=f"stdio backend {name} running under the gateway")


@pytest.fixture
def stdio_gateway(gateway: Callable[..., GatewayProc]) -> tuple[GatewayProc, str]:
    name = f"victim-{uuid.uuid4().hex[:8]}"
    proc = gateway(
        {
            "namespaces": {
                "local": {"backends": [{"name": "local-1", "command": stdio_command(name)}]},
                "ok": {"backends": [{"name": "ok-1", "command": stdio_command(f"ok-{name}")}]},
            }
        }
    )
    return proc, name


def test_killed_stdio_backend_fails_the_call_in_flight_and_is_restarted(stdio_gateway: tuple[GatewayProc, str]) -> None:
    gateway, name = stdio_gateway
    raw = new_session(gateway.url, capabilities={"sampling": {}})
    try:
        assert text_of(call_tool(raw, "local__whoami")) == name
        pid = wait_for_pid(name, gateway)
        # `sample` waits for the client's answer: the call is surely in flight upstream when the
        # sampling request reaches us, and the backend is killed while it waits.
        body = {
            "jsonrpc": "2.0",
            "id": "inflight",
            "method": "tools/call",
            "params": {"name": "local__sample", "arguments": {"prompt": "hi"}},
        }
        started = time.monotonic()
        events: list[dict[str, Any]] = []
        with raw.client.stream("POST", raw.url, content=orjson.dumps(body), headers=raw.headers()) as response:
            buffer = ""
            for line in response.iter_lines():
                buffer += line + "\n"
                if line:
                    continue
                fresh = [e["data"] for e in parse_sse(buffer) if e.get("data")]
                buffer = ""
                events += fresh
                if any(e.get("method") == "sampling/createMessage" for e in fresh):
                    os.kill(pid, signal.SIGKILL)
            events += [e["data"] for e in parse_sse(buffer) if e.get("data")]
        assert any(e.get("method") == "sampling/createMessage" for e in events), events
        final = events[-1]
        assert final.get("id") == "inflight", events
        assert_names_namespace(final, "local", -32050)
        assert time.monotonic() - started < 10
        # Other namespaces never noticed.
        assert text_of(call_tool(raw, "ok__echo", {"text": "fine"})) == "fine"
        # A later call is served by a fresh process.
        assert (
            text_of(wait_until(lambda: _succeeds(raw, "local__whoami", "local"), timeout=15, message="local__whoami after the kill"))
            == name
        )
        assert wait_for_pid(name, gateway, other_than=pid) != pid
    finally:
        raw.close()


def test_killed_idle_stdio_backend_is_restarted_on_the_next_calls(stdio_gateway: tuple[GatewayProc, str]) -> None:
    gateway, name = stdio_gateway
    raw = new_session(gateway.url)
    other = new_session(gateway.url)
    try:
        assert text_of(call_tool(raw, "local__whoami")) == name
        pid = wait_for_pid(name, gateway)
        os.kill(pid, signal.SIGKILL)
        assert (
            text_of(
                wait_until(
                    lambda: _succeeds(raw, "local__echo", "local", {"text": "back"}), timeout=15, message="local__echo after the kill"
                )
            )
            == "back"
        )
        new_pid = wait_for_pid(name, gateway, other_than=pid)
        assert new_pid != pid
        # The restarted process serves every session, not only the one that noticed.
        assert text_of(call_tool(other, "local__whoami")) == name
        assert stdio_backend_pids(name, gateway.proc.pid or -1) == [new_pid]
    finally:
        raw.close()
        other.close()


def test_slow_starting_stdio_backend_with_a_short_timeout(gateway: Callable[..., GatewayProc]) -> None:
    """The call timeout does not cut a stdio server's cold start short, and one process serves."""
    name = f"sluggish-{uuid.uuid4().hex[:8]}"
    delayed_start = "import os, sys, time; time.sleep(1.5); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    command = [sys.executable, "-c", delayed_start, *stdio_command(name)[1:]]
    gw = gateway({"namespaces": {"cold": {"backends": [{"name": "cold-1", "command": command, "timeout_seconds": 1}]}}})
    raw = new_session(gw.url)
    try:
        for attempt in range(3):
            assert text_of(call_tool(raw, "cold__echo", {"text": f"warm {attempt}"})) == f"warm {attempt}"
        assert len(stdio_backend_pids(name, gw.proc.pid or -1)) == 1
        assert_names_namespace(call_tool(raw, "cold__slow", {"seconds": 5}), "cold", -32051)
    finally:
        raw.close()


async def test_abandoned_stdio_handshake_leaves_no_process_or_reader_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never answers `initialize`: each failed attempt ends its own process and
    reader, so the next attempt starts clean (two readers on one pipe would break both)."""
    from app.backends import BackendFailure, multiplexed
    from app.backends.stdio import StdioBackend
    from app.config import BackendConfig

    monkeypatch.setattr(multiplexed, "HANDSHAKE_TIMEOUT_SECONDS", 0.3)
    marker = f"mute-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-c", "import sys; sys.stdin.read()", marker]  # exits when stdin closes
    backend = StdioBackend("mute", BackendConfig(name="mute-1", command=command, timeout_seconds=0.3))
    try:
        for _ in range(2):
            with pytest.raises(BackendFailure) as failure:
                await backend.open_session(multiplexed.GATEWAY_HANDSHAKE, {})
            assert failure.value.code == -32051 and "'mute'" in failure.value.message
            assert backend._reader is None and backend._proc is None
            # Its process is told to go (stdin closed) and is gone shortly after.
            await wait_until_async(lambda: not _processes_with(marker), timeout=5, message=f"{marker} still running")
    finally:
        await backend.close()


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _succeeds(session: RawSession, tool: str, namespace: str, arguments: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The answer when the call succeeded; None after a clean failure naming the namespace."""
    message = call_tool(session, tool, arguments)
    if "error" in message:
        assert_names_namespace(message, namespace, -32050)
        return None
    return message


# -- HTTP backend restarted -----------------------------------------------------------------------


def test_restarted_http_backend_gets_a_fresh_upstream_session(backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]) -> None:
    phoenix = backend(f"phoenix-{uuid.uuid4().hex[:6]}", "http")
    gw = gateway({"namespaces": {"rise": {"backends": [{"name": "rise-1", "url": phoenix.url}]}}})
    raw = new_session(gw.url)
    try:
        assert text_of(call_tool(raw, "rise__whoami")) == phoenix.name

        phoenix.proc.stop()
        # While it is down: a clear error naming the namespace.
        assert_names_namespace(call_tool(raw, "rise__echo", {"text": "x"}), "rise", -32050)

        phoenix.proc.start()
        phoenix.proc.wait_ready(lambda: http_status(phoenix.url) is not None, 15, "backend restarted")
        # The new process forgot the upstream session (404); the gateway opens a fresh one and
        # the call succeeds, on the same gateway session.
        assert text_of(call_tool(raw, "rise__echo", {"text": "again"})) == "again"
        assert text_of(call_tool(raw, "rise__whoami")) == phoenix.name
        assert "upstream session expired" in gw.read_log()
    finally:
        raw.close()
