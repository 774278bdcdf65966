"""The MCPB contract on the wire: raw sockets against a real bridge process in front of a real
gateway. The probe bytes of docs/mcpb.md, the compatibility layout, every error of the contract (and the
bridge serving other connections after each), version negotiation, request-level JSON-RPC errors."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from app.tcp_bridge.codec import (
    Frame,
    FrameType,
    Layout,
    encode_frame,
    encode_json,
    parse_error_payload,
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
    unused_gateway,
)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProc]:
    """A bridge whose gateway is not there: everything here is answered by the bridge itself
    (the gateway-backed cases are in test_tcp_bridge_relay.py)."""
    started = start_bridge(tmp_path_factory.mktemp("mcpb-protocol"), unused_gateway())
    yield started
    stop_all(started.proc)


def request(message: dict[str, object], layout: Layout = Layout.V1) -> bytes:
    return encode_frame(FrameType.REQUEST, encode_json(message), layout=layout)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def error_of(frame: Frame | None) -> tuple[str, str]:
    assert frame is not None and frame.type is FrameType.ERROR, frame
    return parse_error_payload(frame.payload)


async def still_serving(bridge: BridgeProc) -> None:
    """A fresh connection still gets its health check answered."""
    frames = await exchange(bridge, PROBE)
    assert [f.type for f in frames] == [FrameType.HEALTH_CHECK]


# -- health -------------------------------------------------------------------------------------
async def test_the_guides_probe_bytes_get_a_health_answer(bridge: BridgeProc) -> None:
    """`echo -ne "\\x4D\\x43\\x50\\x42\\x01\\x04\\x00\\x00\\x00\\x00\\x00\\x00" | nc -N gateway 8445`"""
    frames = await exchange(bridge, PROBE)
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.type, frame.version, frame.flags, frame.layout) == (FrameType.HEALTH_CHECK, 1, 0, Layout.V1)
    status = orjson.loads(frame.payload)
    # Answered by the bridge itself, with the gateway's reachability (here: nothing listens).
    assert status["status"] == "unhealthy" and status["gateway"] == "unreachable"
    assert {"status", "gateway", "version", "uptime_seconds"} <= set(status)
    assert status["uptime_seconds"] >= 0


async def test_the_probe_is_answered_without_closing_the_connection(bridge: BridgeProc) -> None:
    """Plain `nc` (no -N) keeps its side open: the answer must not wait for EOF, and health checks
    keep the connection usable."""
    reader, writer = await open_raw(bridge)
    try:
        for _ in range(3):
            writer.write(PROBE)
            frame = await next_frame(reader)
            assert frame is not None and frame.type is FrameType.HEALTH_CHECK
        writer.write(encode_frame(FrameType.HEALTH_CHECK, b"{}"))
        assert (await next_frame(reader)).type is FrameType.HEALTH_CHECK  # type: ignore[union-attr]
    finally:
        writer.close()


async def test_the_compatibility_layout_is_answered_in_that_layout(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, COMPAT_PROBE)
    assert len(frames) == 1
    assert frames[0].layout is Layout.COMPAT and frames[0].type is FrameType.HEALTH_CHECK
    assert orjson.loads(frames[0].payload)["gateway"] == "unreachable"


# -- errors of the contract ----------------------------------------------------------------------
FATAL = [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_magic", id="bad-magic"),
    pytest.param(b"MCPB\x02\x04\x00\x00\x00\x00\x00\x00", "unsupported_version", id="bad-version"),
    pytest.param(b"MCPB\x01\x04\x00\x04\x00\x00\x00\x00", "bad_flags", id="bad-flags"),
    pytest.param(b"MCPB\x01\x01\x00\x00\x00\xc0\x00\x00", "frame_too_large", id="oversized"),
    pytest.param(b'MCPB\x01\x01\x00\x00\x00\x00\x00\x40{"jsonrpc"', "truncated_frame", id="truncated"),
]


@pytest.mark.parametrize(("data", "code"), FATAL)
async def test_fatal_errors_get_their_error_frame_then_close(bridge: BridgeProc, data: bytes, code: str) -> None:
    frames = await exchange(bridge, data)
    assert len(frames) == 1, frames
    assert error_of(frames[0])[0] == code
    await still_serving(bridge)


async def test_bad_version_names_the_supported_versions(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, b"MCPB\x03\x04\x00\x00\x00\x00\x00\x00")
    assert error_of(frames[0]) == ("unsupported_version", "version 3 is not supported; supported versions: 1")


async def test_an_oversized_length_is_answered_before_the_payload_is_sent(bridge: BridgeProc) -> None:
    """Only the header goes out (12 MiB announced); the answer comes while we still send nothing."""
    reader, writer = await open_raw(bridge)
    try:
        writer.write(b"MCPB\x01\x01\x00\x00" + (12 * 1024 * 1024).to_bytes(4, "big"))
        assert error_of(await next_frame(reader)) == ("frame_too_large", "12582912 > 10485760")
        assert await next_frame(reader) is None  # then the bridge closes
    finally:
        writer.close()
    await still_serving(bridge)


async def test_unknown_type_gets_an_error_and_the_connection_goes_on(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, b"MCPB\x01\x2a\x00\x00\x00\x00\x00\x03abc" + PROBE)
    assert error_of(frames[0]) == ("unknown_type", "frame type 42 is not defined in version 1")
    assert frames[1].type is FrameType.HEALTH_CHECK


async def test_unknown_type_in_the_compatibility_layout_is_answered_in_it(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, b"MCPB\x00\x01\x00\x63\x00\x00\x00\x00" + COMPAT_PROBE)
    assert [f.layout for f in frames] == [Layout.COMPAT, Layout.COMPAT]
    assert error_of(frames[0])[0] == "unknown_type"


async def test_invalid_json_in_a_request_is_a_json_rpc_parse_error(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, encode_frame(FrameType.REQUEST, b'{"jsonrpc": "2.0", "id": 1,') + PROBE)
    assert [f.type for f in frames] == [FrameType.RESPONSE, FrameType.HEALTH_CHECK]
    response = orjson.loads(frames[0].payload)
    assert response["id"] is None and response["error"]["code"] == -32700


async def test_invalid_utf8_in_a_request_is_a_json_rpc_parse_error(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, encode_frame(FrameType.REQUEST, b'{"a": "\xff\xfe"}'))
    assert orjson.loads(frames[0].payload)["error"]["code"] == -32700


async def test_json_that_is_not_json_rpc_is_an_invalid_request(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, encode_frame(FrameType.REQUEST, b'{"id": 7, "method": 3}') + encode_frame(FrameType.REQUEST, b"[1, 2]"))
    responses = [orjson.loads(f.payload) for f in frames]
    assert [r["error"]["code"] for r in responses] == [-32600, -32600]


async def test_invalid_json_in_a_health_check_is_an_error_frame_not_fatal(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, encode_frame(FrameType.HEALTH_CHECK, b"{nope") + PROBE)
    assert error_of(frames[0])[0] == "invalid_json"
    assert frames[1].type is FrameType.HEALTH_CHECK


async def test_server_only_frame_types_from_a_client_are_refused(bridge: BridgeProc) -> None:
    frames = await exchange(
        bridge, encode_frame(FrameType.CONTROL, b'{"action":"goaway"}') + encode_frame(FrameType.ERROR, b"x: y") + PROBE
    )
    assert error_of(frames[0])[0] == "unexpected_type"
    assert frames[1].type is FrameType.HEALTH_CHECK  # a client's Error frame is noted, never answered


# -- negotiation --------------------------------------------------------------------------------
def negotiation(supported: list[int]) -> bytes:
    offer = {
        "min_version": min(supported),
        "max_version": max(supported),
        "preferred_version": max(supported),
        "supported_versions": supported,
    }
    return encode_frame(FrameType.VERSION_NEGOTIATION, encode_json(offer))


async def test_version_negotiation_agrees_once(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, negotiation([1, 2]) + negotiation([1]) + PROBE)
    assert frames[0].type is FrameType.VERSION_ACK and orjson.loads(frames[0].payload) == {"agreed_version": 1}
    assert error_of(frames[1])[0] == "invalid_negotiation"
    assert frames[2].type is FrameType.HEALTH_CHECK


async def test_negotiation_without_a_common_version_is_an_error_then_close(bridge: BridgeProc) -> None:
    reader, writer = await open_raw(bridge)
    try:
        writer.write(negotiation([2, 3]))
        code, message = error_of(await next_frame(reader))
        assert code == "unsupported_version" and "supported versions: 1" in message
        assert await frames_until_eof(reader) == []
    finally:
        writer.close()


# -- request-level rules without a gateway -----------------------------------------------------------
async def test_a_request_while_the_gateway_is_down_is_a_json_rpc_error(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, request(INITIALIZE) + PROBE + request({**INITIALIZE, "id": 2}))
    assert [f.type for f in frames] == [FrameType.RESPONSE, FrameType.HEALTH_CHECK, FrameType.RESPONSE]
    first, second = orjson.loads(frames[0].payload), orjson.loads(frames[2].payload)
    assert (first["id"], second["id"]) == (1, 2)  # each attempt retries the gateway; the connection stays usable
    assert first["error"]["code"] == -32050 and first["error"]["message"].startswith("Gateway unavailable: cannot reach the gateway")


async def test_a_bad_envelope_is_an_invalid_request(bridge: BridgeProc) -> None:
    frames = await exchange(bridge, request({"auth_token": 42, "message": INITIALIZE}) + request({"message": INITIALIZE, "extra": 1}))
    errors = [orjson.loads(f.payload)["error"] for f in frames]
    assert [e["code"] for e in errors] == [-32600, -32600]
    assert "auth_token" in errors[0]["message"] and "unknown envelope keys: extra" in errors[1]["message"]
