"""Connection budgets: standalone streams (GET) are capped per principal and drawn from their own
pool, so one caller holding many streams never starves anyone's calls, and every wait for a
pooled connection ends within the call timeout."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import ExitStack, aclosing

import httpx
import pytest

from app.backends import BackendFailure, Handshake
from app.backends.http import HttpBackend
from app.config import BackendConfig, ConfigError, parse_config
from app.core.protocol import LATEST_VERSION
from tests.support import Backend, GatewayProc, wait_until
from tests.support.mcp_http import RawSession, messages

KEYS = {"alice": "key-alice-0123456789abcdef0123456789", "bob": "key-bob-0123456789abcdef0123456789ab"}


def test_pool_settings_apply_to_http_backends_only() -> None:
    http = {"name": "h-1", "url": "http://127.0.0.1:1/mcp", "max_connections": 8, "max_stream_connections": 4}
    config = parse_config({"max_streams_per_principal": 5, "namespaces": {"h": {"backends": [http]}}})
    assert config.max_streams_per_principal == 5
    assert (config.namespaces["h"].backends[0].max_connections, config.namespaces["h"].backends[0].max_stream_connections) == (8, 4)
    stdio = {"name": "s-1", "command": ["true"], "max_connections": 8}
    with pytest.raises(ConfigError) as caught:
        parse_config({"max_streams_per_principal": 0, "namespaces": {"s": {"backends": [stdio]}}})
    problems = "\n".join(caught.value.problems)
    assert "max_streams_per_principal" in problems and "max_connections: applies only to Streamable HTTP" in problems, problems


class KeySession(RawSession):
    def __init__(self, base: str, key: str):
        super().__init__(base)
        self.key = key

    def headers(self, **extra: str) -> dict[str, str]:
        credential = {"authorization": f"Bearer {self.key}"} if self.key else {}
        return {**super().headers(**extra), **credential}


def listen(stack: ExitStack, session: KeySession) -> httpx.Response:
    """Open the session's standalone stream (GET /mcp) and keep it open until `stack` closes."""
    headers = {**session.headers(), "accept": "text/event-stream"}
    headers.pop("content-type")
    return stack.enter_context(session.client.stream("GET", session.url, headers=headers))


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_standalone_streams_are_capped_per_principal(
    request: pytest.FixtureRequest, backend: Callable[..., Backend], gateway: Callable[..., GatewayProc], store: str
) -> None:
    server = backend("streamed")
    state = {"redis_url": request.getfixturevalue("redis_url")} if store == "redis" else {}
    gw = gateway(
        {
            **state,
            "auth": {
                "mode": "api_key",
                "api_keys": [{"sha256": hashlib.sha256(k.encode()).hexdigest(), "subject": s} for s, k in KEYS.items()],
            },
            "max_streams_per_principal": 2,
            "namespaces": {"live": {"backends": [{"name": "live-1", "url": server.url}]}},
        }
    )
    alice = [KeySession(gw.url, KEYS["alice"]) for _ in range(3)]
    bob = KeySession(gw.url, KEYS["bob"])
    for session in (*alice, bob):
        session.initialize()
        assert "result" in session.call("tools/call", {"name": "live__echo", "arguments": {"text": "bound"}})
    with ExitStack() as held:
        assert [listen(held, s).status_code for s in alice[:2]] == [200, 200]
        with ExitStack() as extra:
            refused = listen(extra, alice[2])
            assert refused.status_code == 429
            refused.read()
            error = messages(refused)[-1]["error"]
            assert error["code"] == -32029 and "streams" in error["message"], error
        # Another caller is not affected, and the capped one still calls tools.
        assert listen(held, bob).status_code == 200
        assert "result" in alice[2].call("tools/call", {"name": "live__echo", "arguments": {"text": "calls"}})

    # Closed streams give their slots back.
    def reopened() -> bool:
        with ExitStack() as stack:
            return listen(stack, alice[2]).status_code == 200

    wait_until(reopened, timeout=10, message="a stream slot after the others closed")
    for session in (*alice, bob):
        session.close()


async def test_held_streams_never_starve_calls_and_pool_waits_end_within_the_timeout(backend: Callable[..., Backend]) -> None:
    server = backend("pooled")
    config = BackendConfig(name="pooled-1", url=server.url, timeout_seconds=1, max_connections=1, max_stream_connections=1)
    replica = HttpBackend("ns", config)
    try:
        opened = await replica.open_session(Handshake(LATEST_VERSION), {})
        async with aclosing(replica.listen(opened.session_id, opened.protocol_version, None)) as stream:
            await anext(stream)  # Connected: it holds the only stream connection.
            ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
            async with aclosing(replica.request(opened.session_id, opened.protocol_version, ping, {}, "owner")) as answer:
                assert [event.message async for event in answer][-1] == {"jsonrpc": "2.0", "id": 7, "result": {}}
            # A second stream finds the stream pool full: it gives up within the timeout.
            started = time.monotonic()
            with pytest.raises(BackendFailure) as failure:
                async with aclosing(replica.listen(opened.session_id, opened.protocol_version, None)) as second:
                    await anext(second)
            assert time.monotonic() - started < 3
            assert failure.value.code == -32051 and "pooled connection busy" in failure.value.message
    finally:
        await replica.close()


def test_a_quiet_upstream_stream_outlives_the_call_timeout(backend: Callable[..., Backend], gateway: Callable[..., GatewayProc]) -> None:
    """A standalone stream is a subscription: silence longer than `timeout_seconds` is normal
    (SDK servers send a keep-alive only every 15 s), so what the backend sends later still arrives."""
    server = backend("quiet")
    gw = gateway({"namespaces": {"web": {"backends": [{"name": "web-1", "url": server.url, "timeout_seconds": 1}]}}})
    session = KeySession(gw.url, "")
    session.initialize()
    assert "result" in session.call("tools/call", {"name": "web__echo", "arguments": {"text": "bind"}})
    with ExitStack() as held:
        stream = listen(held, session)
        assert stream.status_code == 200
        time.sleep(2.5)  # The scenario, not a synchronisation: a quiet period over the call timeout.
        assert "result" in session.call("tools/call", {"name": "web__change_tools", "arguments": {}})
        deadline = time.monotonic() + 10
        for line in stream.iter_lines():
            if "notifications/tools/list_changed" in line:
                break
            assert time.monotonic() < deadline, "list_changed never arrived on the standalone stream"
    session.close()
