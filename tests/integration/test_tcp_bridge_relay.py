"""MCP through the bridge: MCPB client → bridge process → gateway process (auth on) → real SDK
backend. Credentials, concurrency matched by id, server-to-client messages, limits, idleness,
half-close, a client that does not read, the gateway going away, SIGTERM, metrics and traces."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.tcp_bridge.client import MCPBClient, MCPBError, RpcError
from app.tcp_bridge.codec import (
    FrameType,
    Layout,
    encode_frame,
    encode_json,
    make_envelope,
    parse_error_payload,
)
from app.tcp_bridge.command import add_arguments, build_config
from app.tcp_bridge.connection import address_key
from tests.support import (
    LOOPBACK,
    GatewayProc,
    free_port,
    http_status,
    start_gateway,
    stdio_command,
    tcp_accepts,
    wait_until,
    wait_until_async,
)
from tests.support.bridge import (
    COMPAT_PROBE,
    PROBE,
    BridgeProc,
    exchange,
    frames_until_eof,
    next_frame,
    open_raw,
    start_bridge,
    stop_all,
    ws_url,
)
from tests.support.otlp import OtlpReceiver

API_KEY = "mcpk_bridge_0123456789abcdef"
SAMPLING = {"sampling": {}}


def gateway_config(**extra: Any) -> dict[str, Any]:
    return {
        "auth": {"mode": "api_key", "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "bridge-user"}]},
        "max_in_flight_per_connection": 256,
        # The bridge connects over loopback; trusted, its X-MCP-Transport makes its traffic `tcp`.
        "trusted_proxies": ["127.0.0.1/32"],
        # These tests are about relaying, not limits.
        "rate_limits": {"enabled": False},
        "namespaces": {"local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]}},
        **extra,
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcpb-relay")


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def otlp_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture(scope="module")
def gateway(workdir: Path, otlp: OtlpReceiver) -> Iterator[GatewayProc]:
    proc = start_gateway(gateway_config(), workdir, env={**otlp_env(otlp), "MCP_GATEWAY_METRICS_PORT": str(free_port())})
    yield proc
    proc.proc.stop()


@pytest.fixture(scope="module")
def bridge(gateway: GatewayProc, workdir: Path) -> Iterator[BridgeProc]:
    started = start_bridge(workdir, ws_url(gateway.url), "--max-in-flight", "256")
    yield started
    stop_all(started.proc)


@pytest.fixture(scope="module")
def limited(gateway: GatewayProc, workdir: Path) -> Iterator[BridgeProc]:
    """A bridge with small limits: 2 requests in flight, 2 connections, 4 KiB messages upstream."""
    started = start_bridge(
        workdir, ws_url(gateway.url), "--max-in-flight", "2", "--max-connections", "2", "--upstream-max-message-bytes", "4096"
    )
    yield started
    stop_all(started.proc)


async def connect(bridge: BridgeProc, token: str | None = API_KEY, capabilities: dict[str, Any] | None = None) -> MCPBClient:
    client = await MCPBClient.connect(bridge.host, bridge.port, auth_token=token)
    await client.initialize(capabilities=capabilities)
    return client


def text(result: dict[str, Any]) -> str:
    assert not result.get("isError"), result
    return result["content"][0]["text"]


async def test_initialize_list_and_call_through_the_bridge(bridge: BridgeProc) -> None:
    async with await MCPBClient.connect(bridge.host, bridge.port, auth_token=API_KEY) as client:
        result = await client.initialize()
        assert result["serverInfo"]["name"] == "mcp-gateway"
        tools = {tool["name"] for tool in (await client.call("tools/list"))["tools"]}
        assert {"local__echo", "local__add", "local__whoami"} <= tools
        assert text(await client.call("tools/call", {"name": "local__add", "arguments": {"a": 2, "b": 40}})) == "42"
        assert text(await client.call("tools/call", {"name": "local__whoami", "arguments": {}})) == "local"
        # JSON-RPC failures are Response frames and the connection stays usable.
        with pytest.raises(RpcError) as caught:
            await client.call("tools/call", {"name": "nowhere__tool", "arguments": {}})
        assert caught.value.code == -32602
        failed = await client.call("tools/call", {"name": "local__fail", "arguments": {"message": "boom"}})
        assert failed["isError"] and "boom" in failed["content"][0]["text"]
        assert (await client.health())["status"] == "healthy"
        assert client.errors == []


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("tools/call", {"name": "local__echo", "arguments": {"text": "x"}, "_meta": "x"}, "_meta"),
        ("completion/complete", {"ref": "local__greet", "argument": {"name": "name", "value": ""}}, "ref"),
    ],
    ids=["meta-string", "ref-string"],
)
async def test_wrongly_typed_params_are_answered_with_invalid_params(
    bridge: BridgeProc, method: str, params: dict[str, Any], field: str
) -> None:
    async with await connect(bridge) as client:
        with pytest.raises(RpcError) as caught:
            await asyncio.wait_for(client.call(method, params), 15)
        assert caught.value.code == -32602 and f"'{field}'" in str(caught.value)
        assert text(await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "after"}})) == "after"


async def test_many_concurrent_requests_on_one_connection_are_matched_by_id(bridge: BridgeProc) -> None:
    async with await connect(bridge) as client:
        arrived: list[int] = []

        async def one(i: int) -> None:
            if i == 0:
                result = await client.call("tools/call", {"name": "local__slow", "arguments": {"seconds": 1.0}})
                assert text(result) == "done"
            else:
                result = await client.call("tools/call", {"name": "local__echo", "arguments": {"text": f"message {i}"}})
                assert text(result) == f"message {i}"
            arrived.append(i)

        await asyncio.gather(*(one(i) for i in range(200)))
        assert sorted(arrived) == list(range(200))
        assert arrived.index(0) > 0, "the slow call was sent first; quicker answers must overtake it"


async def test_ids_of_any_kind_come_back_unchanged(bridge: BridgeProc) -> None:
    ids = ["a", "b-2", 7, 0, -3, "7"]
    reader, writer = await open_raw(bridge)
    try:
        init = {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        }
        writer.write(encode_frame(FrameType.REQUEST, encode_json(make_envelope(init, API_KEY))))
        assert orjson.loads((await next_frame(reader)).payload)["id"] == "init"  # type: ignore[union-attr]
        for request_id in ids:
            call = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": "local__echo", "arguments": {"text": repr(request_id)}},
            }
            writer.write(encode_frame(FrameType.REQUEST, encode_json(call)))
        got = {}
        for _ in ids:
            response = orjson.loads((await next_frame(reader)).payload)  # type: ignore[union-attr]
            got[repr(response["id"])] = response["result"]["content"][0]["text"]
        assert got == {repr(i): repr(i) for i in ids}
    finally:
        writer.close()


async def test_server_to_client_requests_and_notifications_are_relayed(bridge: BridgeProc) -> None:
    async with await connect(bridge, capabilities=SAMPLING) as client:

        async def answer_sampling() -> str:
            message = await asyncio.wait_for(client.incoming.get(), 10)
            assert message["method"] == "sampling/createMessage"
            prompt = message["params"]["messages"][0]["content"]["text"]
            await client.respond(
                message["id"], {"role": "assistant", "content": {"type": "text", "text": f"sampled:{prompt}"}, "model": "m"}
            )
            return prompt

        answering = asyncio.create_task(answer_sampling())
        result = await client.call("tools/call", {"name": "local__sample", "arguments": {"prompt": "hello"}})
        assert await answering == "hello"
        assert text(result) == "sampled:hello"

        result = await client.call("tools/call", {"name": "local__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "p1"}})
        assert text(result) == "done"
        notes = [client.incoming.get_nowait() for _ in range(client.incoming.qsize())]
        progress = [n["params"]["progress"] for n in notes if n.get("method") == "notifications/progress"]
        assert progress == [1, 2, 3]


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def request(message: dict[str, Any], layout: Layout = Layout.V1, token: str | None = None) -> bytes:
    return encode_frame(FrameType.REQUEST, encode_json(make_envelope(message, token)), layout=layout)


async def test_the_guides_probe_reports_a_reachable_gateway(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, PROBE)
    assert len(frames) == 1 and frames[0].type is FrameType.HEALTH_CHECK
    status = orjson.loads(frames[0].payload)
    assert (status["status"], status["gateway"]) == ("healthy", "ready")


async def test_a_compatibility_layout_client_speaks_json_rpc_in_its_layout(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, request(INITIALIZE, Layout.COMPAT, API_KEY) + COMPAT_PROBE)
    assert [f.layout for f in frames] == [Layout.COMPAT, Layout.COMPAT]
    response = next(orjson.loads(f.payload) for f in frames if f.type is FrameType.RESPONSE)
    assert response["id"] == 1 and response["result"]["serverInfo"]["name"] == "mcp-gateway"


async def test_a_duplicate_id_in_flight_is_refused(bridge: BridgeProc) -> None:
    slow = {"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"name": "local__slow", "arguments": {"seconds": 0.5}}}
    frames = await exchange(bridge, request(INITIALIZE, token=API_KEY) + request(slow) + request(slow))
    responses = [orjson.loads(f.payload) for f in frames]
    assert sorted(str(r["id"]) for r in responses) == ["1", "x", "x"]
    refused, answered = (r for r in responses if r["id"] == "x")  # the refusal comes first: no gateway round trip
    assert "already in use" in refused["error"]["message"]
    assert answered["result"]["content"][0]["text"] == "done"


async def test_protocol_errors_on_other_connections_leave_a_session_untouched(bridge: BridgeProc) -> None:
    reader, writer = await open_raw(bridge)
    try:
        writer.write(request(INITIALIZE, token=API_KEY))
        assert (await next_frame(reader)).type is FrameType.RESPONSE  # type: ignore[union-attr]
        garbage = [
            b"GET / HTTP/1.1\r\n\r\n",
            b"MCPB\x02\x04\x00\x00\x00\x00\x00\x00",
            b"MCPB\x01\x04\x00\x04\x00\x00\x00\x00",
            b"MCPB\x01\x01\x00\x00\x00\xc0\x00\x00",
            b"MCPB\x01\x01\x00\x00\x00\x00\x00\x40{",
        ]
        answers = await asyncio.gather(*(exchange(bridge, data) for data in garbage))
        assert all(len(frames) == 1 and frames[0].type is FrameType.ERROR for frames in answers)
        writer.write(request({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        frame = await next_frame(reader)
        assert frame is not None and orjson.loads(frame.payload)["id"] == 2 and "tools" in orjson.loads(frame.payload)["result"]
    finally:
        writer.close()


# -- credentials ----------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["mcpk_wrong_key", None], ids=["bad-token", "no-token"])
async def test_bad_credentials_get_an_unauthorized_error_frame_then_close(bridge: BridgeProc, token: str | None) -> None:
    reader, writer = await open_raw(bridge)
    try:
        # A health check needs no credentials.
        writer.write(PROBE)
        assert (await next_frame(reader)).type is FrameType.HEALTH_CHECK  # type: ignore[union-attr]
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        }
        writer.write(encode_frame(FrameType.REQUEST, encode_json(make_envelope(init, token))))
        frames = await frames_until_eof(reader)
    finally:
        writer.close()
    # The request is answered (never dropped silently), then the connection-level verdict.
    assert [f.type for f in frames] == [FrameType.RESPONSE, FrameType.ERROR]
    assert orjson.loads(frames[0].payload)["error"]["code"] == -32001
    code, message = parse_error_payload(frames[1].payload)
    assert code == "unauthorized" and "401" in message
    assert ("unknown API key" if token else "missing bearer token") in message
    if token:
        assert token not in bridge.read_log()
    assert API_KEY not in bridge.read_log()
    # Others are unaffected.
    assert [f.type for f in await exchange(bridge, PROBE)] == [FrameType.HEALTH_CHECK]


async def test_credentials_cannot_change_on_an_open_connection(bridge: BridgeProc) -> None:
    async with await connect(bridge) as client:
        other = {"jsonrpc": "2.0", "id": "again", "method": "ping"}
        await client.send_frame(FrameType.REQUEST, encode_json(make_envelope(other, "mcpk_someone_else")))
        await client.send_frame(FrameType.REQUEST, encode_json(make_envelope({**other, "id": "same"}, API_KEY)))
        await wait_until_async(lambda: len(client.stray) == 2, 10)
        by_id = {m["id"]: m for m in client.stray}
        assert by_id["again"]["error"]["code"] == -32600 and "credentials cannot change" in by_id["again"]["error"]["message"]
        assert by_id["same"]["result"] == {}


# -- limits ---------------------------------------------------------------------------------------
async def test_too_many_requests_in_flight_get_a_json_rpc_error(limited: BridgeProc) -> None:
    async with await connect(limited) as client:
        slow = {"name": "local__slow", "arguments": {"seconds": 0.6}}
        # gather starts the calls in order, so the frames go out in this order.
        first, second, third = await asyncio.gather(
            client.call("tools/call", slow), client.call("tools/call", slow), client.call("tools/call", slow), return_exceptions=True
        )
        assert [text(first), text(second)] == ["done", "done"]  # type: ignore[arg-type]
        assert isinstance(third, RpcError) and third.code == -32600
        assert third.message == "Too many requests in flight on this connection (limit 2)"
        # Capacity is back once they are answered.
        assert text(await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "again"}})) == "again"


async def test_a_message_too_large_for_the_gateway_is_refused_and_the_session_lives(limited: BridgeProc) -> None:
    async with await connect(limited) as client:
        with pytest.raises(RpcError) as caught:
            await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "x" * 5000}})
        assert "exceeds 4096 bytes" in str(caught.value.message)
        assert text(await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "small"}})) == "small"


async def test_connections_over_the_limit_get_an_error_frame(limited: BridgeProc) -> None:
    # Connections of earlier tests may still be closing: wait until two of ours are admitted.
    first = await wait_until_async(lambda: _admitted(limited), 10, message="a first connection admitted")
    second = await wait_until_async(lambda: _admitted(limited), 10, message="a second connection admitted")
    try:
        assert (await first.health())["connections"] == 2
        frames = await exchange(limited, PROBE)
        assert len(frames) == 1
        assert parse_error_payload(frames[0].payload) == ("too_many_connections", "limit 2 reached")
        assert (await first.health())["status"] == "healthy"
    finally:
        await first.close()
        await second.close()
    # Freed slots are usable again.
    again = await wait_until_async(lambda: _admitted(limited), 10)
    await again.close()


async def _admitted(bridge: BridgeProc) -> MCPBClient | None:
    """A connection the bridge admitted (its health check is answered), or None."""
    client = await MCPBClient.connect(bridge.host, bridge.port)
    try:
        await client.health()
    except MCPBError:
        await client.close()
        return None
    return client


async def test_idle_connections_are_closed_and_health_checks_keep_them_alive(gateway: GatewayProc, workdir: Path) -> None:
    idle = start_bridge(workdir, ws_url(gateway.url), "--idle-timeout", "0.6")
    try:
        quiet = await MCPBClient.connect(idle.host, idle.port)
        busy = await connect(idle)
        try:
            # A call longer than the idle timeout is not idleness.
            assert text(await busy.call("tools/call", {"name": "local__slow", "arguments": {"seconds": 1.0}})) == "done"
            await asyncio.wait_for(quiet.closed.wait(), 5)
            assert quiet.errors == [("idle_timeout", "no frame for 0.6 s")]
            # Health checks every 0.2 s keep a connection open past the timeout.
            for _ in range(6):
                assert (await busy.health())["status"] == "healthy"
                await asyncio.sleep(0.2)  # the client's keep-alive cadence, not synchronisation
            assert not busy.closed.is_set()
        finally:
            await quiet.close()
            await busy.close()
    finally:
        stop_all(idle.proc)


async def _hold_with_health_checks(
    bridge: BridgeProc, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[list[FrameType], float]:
    """A stranger's connection kept busy with HealthCheck frames until the bridge closes it: the
    frame types it got back, and how long it lasted."""
    opened = time.monotonic()
    kinds: list[FrameType] = []
    while True:
        try:
            writer.write(PROBE)
        except (ConnectionError, RuntimeError):
            pass  # the bridge has closed its side; what it sent is still to read
        frame = await next_frame(reader)
        if frame is None:
            return kinds, time.monotonic() - opened
        kinds.append(frame.type)
        if frame.type is FrameType.ERROR:
            assert parse_error_payload(frame.payload) == ("auth_timeout", "no authenticated request within 1.5 s")
        else:
            await asyncio.sleep(0.25)  # the stranger's keep-alive cadence, not synchronisation


async def test_strangers_cannot_hold_the_bridge_with_health_checks(gateway: GatewayProc, workdir: Path) -> None:
    guarded = start_bridge(workdir, ws_url(gateway.url), "--max-unauthenticated-per-address", "3", "--auth-timeout", "1.5")
    try:
        # An authenticated connection does not count against its address's limit.
        member = await connect(guarded)
        strangers = [await open_raw(guarded) for _ in range(3)]
        holds = [asyncio.create_task(_hold_with_health_checks(guarded, *pair)) for pair in strangers]
        frames = await exchange(guarded, PROBE)
        assert [parse_error_payload(f.payload) for f in frames] == [
            ("too_many_connections", "limit 3 unauthenticated connections per address reached")
        ]
        # Another address still gets in and authenticates.
        reader, writer = await asyncio.open_connection(guarded.host, guarded.port, local_addr=("127.0.0.2", 0))
        async with MCPBClient(reader, writer, auth_token=API_KEY) as neighbour:
            await neighbour.initialize()
            # HealthCheck frames keep a connection from idling, not from authenticating.
            for kinds, lasted in await asyncio.gather(*holds):
                assert kinds[-1] is FrameType.ERROR and set(kinds[:-1]) == {FrameType.HEALTH_CHECK}
                assert 1.5 <= lasted < 4.0
            for _, stranger in strangers:
                stranger.close()
            assert text(await neighbour.call("tools/call", {"name": "local__echo", "arguments": {"text": "still here"}})) == "still here"
        assert text(await member.call("tools/call", {"name": "local__echo", "arguments": {"text": "member"}})) == "member"
        await member.close()

        # The slots are free again once the strangers' connections are gone.
        async def admitted() -> bool:
            return [f.type for f in await exchange(guarded, PROBE)] == [FrameType.HEALTH_CHECK]

        await wait_until_async(admitted, 5, message="a new connection admitted after the strangers left")
    finally:
        stop_all(guarded.proc)


def test_the_stranger_limits_come_from_flags_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_BRIDGE_MAX_UNAUTHENTICATED_PER_ADDRESS", "5")
    monkeypatch.setenv("MCP_BRIDGE_AUTH_TIMEOUT", "2.5")
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # reads the environment's defaults now
    config = build_config(parser.parse_args([]))
    assert (config.max_unauthenticated_per_address, config.auth_timeout) == (5, 2.5)
    assert build_config(parser.parse_args(["--auth-timeout", "4"])).auth_timeout == 4
    for bad, problem in (
        (["--auth-timeout", "0"], "--auth-timeout must be positive"),
        (["--max-unauthenticated-per-address", "0"], "at least 1"),
    ):
        with pytest.raises(ValueError, match=problem):
            build_config(parser.parse_args(bad))


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack socket's view of an IPv4 client
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one host picks any address in its /64
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        (None, ""),
    ],
)
def test_the_per_address_limit_counts_an_ipv6_host_by_its_64(address: str | None, key: str) -> None:
    assert address_key(address) == key


async def test_half_close_gets_every_owed_response_then_eof(bridge: BridgeProc) -> None:
    reader, writer = await open_raw(bridge)
    try:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        }
        data = encode_frame(FrameType.REQUEST, encode_json(make_envelope(init, API_KEY)))
        for i in range(1, 4):
            call = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "local__slow", "arguments": {"seconds": 0.3}}}
            data += encode_frame(FrameType.REQUEST, encode_json(call))
        writer.write(data)
        writer.write_eof()
        frames = await frames_until_eof(reader)
    finally:
        writer.close()
    responses = [orjson.loads(f.payload) for f in frames]
    assert sorted(r["id"] for r in responses) == [0, 1, 2, 3]
    assert all(r["result"]["content"][0]["text"] == "done" for r in responses if r["id"])


async def test_a_client_that_does_not_read_is_disconnected_not_buffered(gateway: GatewayProc, workdir: Path) -> None:
    slow = start_bridge(workdir, ws_url(gateway.url), "--write-timeout", "1")
    try:
        reader, writer = await open_raw(slow, rcvbuf=4096)
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        }
        writer.write(encode_frame(FrameType.REQUEST, encode_json(make_envelope(init, API_KEY))))
        big = "y" * (512 * 1024)
        for i in range(1, 21):  # 10 MiB of answers that this client never reads
            call = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "local__echo", "arguments": {"text": big}}}
            writer.write(encode_frame(FrameType.REQUEST, encode_json(call)))
        await writer.drain()
        wait_until(lambda: "client does not read its frames" in slow.read_log(), 30, message=slow.read_log)
        # What was sent before the cut is still readable; then the stream ends early.
        received = 0
        try:
            async with asyncio.timeout(15):
                while chunk := await reader.read(1 << 20):
                    received += len(chunk)
        except ConnectionError:
            pass
        assert received < 20 * len(big)
        writer.close()
        assert [f.type for f in await exchange(slow, PROBE)] == [FrameType.HEALTH_CHECK]
    finally:
        stop_all(slow.proc)


async def test_the_gateway_going_away_is_relayed_as_goaway(workdir: Path) -> None:
    own = start_gateway(gateway_config(drain_timeout_seconds=10), workdir)
    relay = start_bridge(workdir, ws_url(own.url))
    try:
        client = await connect(relay, capabilities=SAMPLING)
        try:
            in_flight = asyncio.create_task(client.call("tools/call", {"name": "local__sample", "arguments": {"prompt": "bye"}}))
            asked = await asyncio.wait_for(client.incoming.get(), 10)  # the call is running in the gateway
            assert own.proc.pid is not None
            os.kill(own.proc.pid, signal.SIGTERM)
            await wait_until_async(lambda: http_status(f"{own.url}/readyz") != 200, 10, message="gateway draining")
            await client.respond(asked["id"], {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m"})
            assert text(await in_flight) == "sampled"  # the gateway drains: in-flight calls are answered
            await asyncio.wait_for(client.goaway.wait(), 10)
            assert client.goaway_payload == {"action": "goaway", "reason": "gateway_going_away"}
            await asyncio.wait_for(client.closed.wait(), 10)
        finally:
            await client.close()
    finally:
        stop_all(relay.proc, own.proc)


# -- graceful shutdown ----------------------------------------------------------------------------
def sigterm(bridge: BridgeProc) -> None:
    assert bridge.proc.pid is not None
    os.kill(bridge.proc.pid, signal.SIGTERM)


async def test_sigterm_completes_in_flight_requests_and_sends_goaway(gateway: GatewayProc, workdir: Path) -> None:
    own = start_bridge(workdir, ws_url(gateway.url), "--drain-timeout", "20")
    try:
        client = await connect(own)
        bystander = await MCPBClient.connect(own.host, own.port)
        try:
            calls = [
                asyncio.create_task(client.call("tools/call", {"name": "local__slow", "arguments": {"seconds": 1.0}})) for _ in range(3)
            ]
            await asyncio.sleep(0)  # one loop turn: the three calls write their frames
            await client.health()  # frames are handled in order: the calls have reached the gateway
            sigterm(own)
            await asyncio.wait_for(asyncio.gather(client.goaway.wait(), bystander.goaway.wait()), 10)
            assert client.goaway_payload is not None and client.goaway_payload["action"] == "goaway"
            # New connections are no longer accepted while the old ones drain.
            await wait_until_async(lambda: not tcp_accepts(own.host, own.port), 10)
            # A request sent after goaway is refused, not silently dropped.
            late = await client.request("tools/call", {"name": "local__echo", "arguments": {"text": "late"}})
            assert late["error"]["code"] == -32060 and late["error"]["data"] == {"reason": "draining"}
            # Every accepted request completes.
            assert [text(r) for r in await asyncio.gather(*calls)] == ["done"] * 3
            await asyncio.wait_for(asyncio.gather(client.closed.wait(), bystander.closed.wait()), 10)
            assert client.errors == [] and bystander.errors == []
        finally:
            await client.close()
            await bystander.close()
        await wait_until_async(lambda: not own.proc.running, 15, message=own.read_log)
        assert own.proc.returncode == 0
    finally:
        stop_all(own.proc)


async def test_requests_still_in_flight_at_the_drain_deadline_get_an_error(gateway: GatewayProc, workdir: Path) -> None:
    own = start_bridge(workdir, ws_url(gateway.url), "--drain-timeout", "0.5")
    try:
        client = await connect(own)
        try:
            call = asyncio.create_task(client.request("tools/call", {"name": "local__slow", "arguments": {"seconds": 10}}))
            await asyncio.sleep(0)  # one loop turn: the call writes its frame
            await client.health()
            sigterm(own)
            response = await asyncio.wait_for(call, 10)
            assert response["error"]["code"] == -32060 and "before the gateway answered" in response["error"]["message"]
            assert client.goaway.is_set()
            await asyncio.wait_for(client.closed.wait(), 10)
        finally:
            await client.close()
        await wait_until_async(lambda: not own.proc.running, 10, message=own.read_log)
        assert own.proc.returncode == 0
    finally:
        stop_all(own.proc)


# -- telemetry --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env", "bound"),
    [
        ([], {}, "127.0.0.1"),  # loopback, like the default --listen
        (["--listen", "0.0.0.0:8445"], {}, "0.0.0.0"),  # a container: Prometheus must reach :9092
        (["--listen", "0.0.0.0:8445", "--metrics-host", "127.0.0.1"], {}, "127.0.0.1"),
        (["--listen", "0.0.0.0:8445"], {"MCP_BRIDGE_METRICS_HOST": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_the_scrape_endpoint_binds_the_listen_host_unless_told_otherwise(
    args: list[str], env: dict[str, str], bound: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCP_BRIDGE_METRICS_HOST", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # reads the environment's defaults now
    assert build_config(parser.parse_args(args)).metrics_host == bound


async def test_frames_connections_and_tcp_latency_are_scraped(gateway: GatewayProc, workdir: Path) -> None:
    metrics_port = free_port()
    own = start_bridge(workdir, ws_url(gateway.url), "--metrics-port", str(metrics_port))
    try:
        async with await connect(own) as client:
            await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "hi"}})
            await client.health()
            scrape = httpx.get(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=5).text  # noqa: ASYNC210 (the calls are done; a blocking scrape is fine here)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scrape)
            for sample in family.samples
        }

        def value(name: str, **labels: str) -> float:
            return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))

        assert value("mcp_gateway_tcp_frames_total", type="request", direction="inbound") >= 3  # initialize, initialized, call
        assert value("mcp_gateway_tcp_frames_total", type="response", direction="outbound") >= 2
        assert value("mcp_gateway_tcp_frames_total", type="health_check", direction="inbound") == 1
        assert value("mcp_gateway_tcp_frames_total", type="health_check", direction="outbound") == 1
        assert value("mcp_gateway_connections_total", protocol="tcp", state="active") == 1
        assert value("mcp_gateway_request_duration_seconds_count", protocol="tcp", method="tools/call") == 1
        assert value("mcp_gateway_request_duration_seconds_count", protocol="tcp", method="initialize") == 1
        assert "mcp_gateway_requests_total" not in scrape  # the gateway counts requests, once
        # The gateway knows these requests came over TCP: counted once there, timed once (here).
        gateway_scrape = httpx.get(f"http://{LOOPBACK}:{gateway.metrics_port}/metrics", timeout=5).text  # noqa: ASYNC210
        durations = [
            sample
            for family in text_string_to_metric_families(gateway_scrape)
            for sample in family.samples
            if sample.name == "mcp_gateway_request_duration_seconds_count" and sample.labels.get("method") == "tools/call"
        ]
        assert all(sample.labels["protocol"] != "websocket" for sample in durations)
        ws_connections = [
            sample.value
            for family in text_string_to_metric_families(gateway_scrape)
            for sample in family.samples
            if sample.name == "mcp_gateway_connections_total" and sample.labels.get("protocol") == "websocket"
        ]
        assert sum(ws_connections) == 0  # The bridge's upstream socket is counted by the bridge, as tcp.
    finally:
        stop_all(own.proc)


async def test_the_trace_continues_from_the_client_through_the_bridge_into_the_gateway(
    gateway: GatewayProc, workdir: Path, otlp: OtlpReceiver
) -> None:
    own = start_bridge(workdir, ws_url(gateway.url), env=otlp_env(otlp))
    trace_id, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        async with await connect(own) as client:
            meta = {"traceparent": f"00-{trace_id}-{client_span}-01"}
            result = await client.call("tools/call", {"name": "local__echo", "arguments": {"text": "traced"}, "_meta": meta})
            assert text(result) == "traced"

        def spans() -> dict[str, Any] | None:
            mine = {s.name: s for s in otlp.spans() if s.trace_id == trace_id}
            return mine if {"bridge.handleRequest", "gateway.handleRequest"} <= set(mine) else None

        found = otlp.wait_for(spans, 15, "bridge and gateway spans of the client's trace")
        bridge_span, gateway_span = found["bridge.handleRequest"], found["gateway.handleRequest"]
        assert bridge_span.parent_span_id == client_span
        assert gateway_span.parent_span_id == bridge_span.span_id
        assert bridge_span.service == "mcp-gateway-tcp-bridge"
        assert bridge_span.attributes["mcp.method.name"] == "tools/call"
        assert bridge_span.attributes["gen_ai.tool.name"] == "local__echo"
        assert bridge_span.attributes["network.transport"] == "tcp"
    finally:
        stop_all(own.proc)
