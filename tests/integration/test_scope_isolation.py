"""One principal's scopes bound what the gateway does on its behalf, and one session's choices stay
its own on backends every session shares (stdio, WebSocket): relearning names and URIs lists only
namespaces the caller may read, at most once in a while; `logging/setLevel` does not change what
another session is sent; list changes reach only sessions that may read the namespace."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import GatewayProc, start_gateway, stdio_command
from tests.support.guard import Flaky, start_flaky, start_together
from tests.support.mcp_http import RawSession, messages
from tests.support.mcp_ws import WsSession

KEYS = {"wide": "key-wide-0123456789abcdef0123456789ab", "narrow": "key-narrow-0123456789abcdef01234567"}
SCOPES = {"wide": ["mcp:*"], "narrow": ["mcp:alpha"]}


def auth() -> dict[str, Any]:
    keys = [{"sha256": hashlib.sha256(key.encode()).hexdigest(), "subject": name, "scopes": SCOPES[name]} for name, key in KEYS.items()]
    return {"mode": "api_key", "api_keys": keys}


class KeySession(RawSession):
    def __init__(self, base: str, who: str):
        super().__init__(base)
        self.key = KEYS[who]

    def headers(self, **extra: str) -> dict[str, str]:
        return {**super().headers(**extra), "authorization": f"Bearer {self.key}"}


def opened(gw: GatewayProc, who: str) -> KeySession:
    session = KeySession(gw.url, who)
    session.initialize()
    return session


# -- relearning unknown URIs ----------------------------------------------------------------------------


@pytest.fixture
def flakies(tmp_path: Path) -> Iterator[tuple[Flaky, Flaky]]:
    alpha, beta = start_together(lambda: start_flaky(tmp_path, "alpha"), lambda: start_flaky(tmp_path, "beta"))
    yield alpha, beta
    alpha.proc.stop()
    beta.proc.stop()


def listings(flaky: Flaky) -> dict[str, int]:
    counts = flaky.counts()
    return {method: counts.get(method, 0) for method in ("initialize", "resources/list", "resources/templates/list")}


def test_an_unknown_uri_is_looked_for_only_where_the_caller_may_read_and_not_on_every_request(
    gateway: Callable[..., GatewayProc], flakies: tuple[Flaky, Flaky]
) -> None:
    alpha, beta = flakies
    gw = gateway(
        {
            "auth": auth(),
            "health_checks": {"enabled": False},
            "breaker": {"failure_threshold": 1000, "min_calls": 1000},  # Every call reaches the sick backends.
            "namespaces": {
                "alpha": {"backends": [{"name": "alpha-1", "url": alpha.url}]},
                "beta": {"backends": [{"name": "beta-1", "url": beta.url}]},
            },
        }
    )
    beta_before = listings(beta)
    narrow = opened(gw, "narrow")
    first = narrow.call("resources/read", {"uri": "secret://nowhere"})
    assert first["error"]["code"] == -32602 and "Unknown resource" in first["error"]["message"], first
    alpha_after_first = listings(alpha)
    assert alpha_after_first["resources/list"] >= 1  # The readable namespace was asked.
    for attempt in range(5):
        again = narrow.call("resources/read", {"uri": f"secret://nowhere/{attempt}"})
        assert again["error"]["code"] == -32602, again
    assert listings(beta) == beta_before  # Never a session, never a listing, in the forbidden namespace.
    assert listings(alpha) == alpha_after_first  # Asked once, not once per unknown URI.


# -- shared backends -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    gateway = start_gateway(
        {
            "auth": auth(),
            "health_checks": {"enabled": False},
            "namespaces": {
                "alpha": {"backends": [{"name": "alpha-1", "command": stdio_command("alpha")}]},
                "beta": {"backends": [{"name": "beta-1", "command": stdio_command("beta")}]},
            },
        },
        tmp_path_factory.mktemp("shared"),
    )
    yield gateway
    gateway.proc.stop()


def log_call(session: RawSession, level: str) -> tuple[str, list[dict[str, Any]]]:
    """Call alpha's `log` tool: its text ("logged" or "filtered") and the log messages relayed."""
    response = session.request("tools/call", {"name": "alpha__log", "arguments": {"message": f"at {level}", "level": level}})
    assert response.status_code == 200, response.text
    relayed = messages(response)
    text = relayed[-1]["result"]["content"][0]["text"]
    return text, [m for m in relayed if m.get("method") == "notifications/message"]


def test_set_level_on_a_shared_backend_applies_to_the_session_alone(shared: GatewayProc) -> None:
    quiet, other = opened(shared, "wide"), opened(shared, "narrow")
    assert quiet.call("logging/setLevel", {"level": "error"})["result"] == {}
    # Another principal's session still gets everything the backend logs.
    text, logs = log_call(other, "info")
    assert text == "logged" and [m["params"]["data"] for m in logs] == ["at info"], (text, logs)
    # The quiet session gets only what its own level lets through.
    assert log_call(quiet, "info")[1] == []
    assert [m["params"]["data"] for m in log_call(quiet, "error")[1]] == ["at error"]


def ws_session(gw: GatewayProc, who: str) -> WsSession:
    session = WsSession(gw.url.replace("http://", "ws://") + "/ws", headers={"authorization": f"Bearer {KEYS[who]}"})
    assert "result" in session.initialize()
    return session


def frames_until(session: WsSession, request_id: Any) -> list[dict[str, Any]]:
    """Every frame up to and including the answer to `request_id`."""
    frames = []
    while True:
        frames.append(orjson.loads(session.conn.recv(timeout=15)))
        if frames[-1].get("id") == request_id and "method" not in frames[-1]:
            return frames


def test_list_changed_reaches_only_sessions_that_may_read_the_namespace(shared: GatewayProc) -> None:
    with ws_session(shared, "wide") as wide, ws_session(shared, "narrow") as narrow:
        wide.conn.send(
            orjson.dumps({"jsonrpc": "2.0", "id": "change", "method": "tools/call", "params": {"name": "beta__change_tools"}}).decode()
        )
        seen = frames_until(wide, "change")
        while not any(m.get("method") == "notifications/tools/list_changed" for m in seen):
            seen.append(orjson.loads(wide.conn.recv(timeout=15)))
        # Delivered to every subscriber at once: by now the narrow session's copy would be queued.
        narrow.conn.send(orjson.dumps({"jsonrpc": "2.0", "id": "probe", "method": "ping"}).decode())
        assert not any(m.get("method") == "notifications/tools/list_changed" for m in frames_until(narrow, "probe"))
        # Its own namespace's changes do reach it.
        narrow.conn.send(
            orjson.dumps({"jsonrpc": "2.0", "id": "own", "method": "tools/call", "params": {"name": "alpha__change_tools"}}).decode()
        )
        frames = frames_until(narrow, "own")
        while not any(m.get("method") == "notifications/tools/list_changed" for m in frames):
            frames.append(orjson.loads(narrow.conn.recv(timeout=15)))
