"""The bridge's side of the upgrade, against a STAND-IN gateway: a tiny WebSocket server in this
test that records the upgrade request and refuses it or goes away on command. (The real gateway's
401 is covered end to end in test_tcp_bridge_relay.py; the stand-in makes the cases the real one
cannot be made to produce on demand: a 403, the exact headers seen, a gateway that is not up.)"""

from __future__ import annotations

import asyncio
import http
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from app.tcp_bridge.codec import (
    FrameType,
    encode_frame,
    encode_json,
    make_envelope,
    parse_error_payload,
)
from tests.support import LOOPBACK, free_port
from tests.support.bridge import (
    PROBE,
    exchange,
    frames_until_eof,
    next_frame,
    open_raw,
    start_bridge,
    stop_all,
)

TOKEN = "stand-in-secret-token-4242"
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


class StandInGateway:
    """Not the gateway: answers the upgrade with `status` (101 accepts and echoes `ping`s)."""

    def __init__(self) -> None:
        self.status = http.HTTPStatus.FORBIDDEN
        self.requests: list[Headers] = []
        self.server: Server | None = None
        self.port = free_port()

    def refuse(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request.headers)
        if self.status == http.HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": "Forbidden: stand-in says no"}})
        return connection.respond(self.status, body.decode())

    async def answer(self, connection: ServerConnection) -> None:
        async for raw in connection:
            message = orjson.loads(raw)
            await connection.send(orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {}}).decode())

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/ws"


@pytest.fixture
async def stand_in() -> AsyncIterator[StandInGateway]:
    gateway = StandInGateway()
    async with serve(gateway.answer, LOOPBACK, gateway.port, process_request=gateway.refuse, subprotocols=["mcp"]) as server:  # type: ignore[list-item]
        gateway.server = server
        yield gateway


async def test_a_refused_upgrade_is_an_unauthorized_error_frame_then_close(
    stand_in: StandInGateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bridge = await asyncio.to_thread(start_bridge, tmp_path_factory.mktemp("standin"), stand_in.url)
    try:
        reader, writer = await open_raw(bridge)
        try:
            writer.write(encode_frame(FrameType.REQUEST, encode_json(make_envelope(PING, TOKEN))))
            frames = await frames_until_eof(reader)
        finally:
            writer.close()
        assert [f.type for f in frames] == [FrameType.RESPONSE, FrameType.ERROR]
        assert orjson.loads(frames[0].payload)["error"]["code"] == -32001
        assert parse_error_payload(frames[1].payload) == (
            "unauthorized",
            "the gateway refused the connection's credentials (HTTP 403): Forbidden: stand-in says no",
        )
        # The token went to the gateway as a bearer credential on the upgrade, and nowhere else.
        headers = stand_in.requests[-1]
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        assert headers["Sec-WebSocket-Protocol"] == "mcp"
        assert TOKEN not in bridge.read_log()
        # The bridge goes on serving others.
        assert [f.type for f in await exchange(bridge, PROBE)] == [FrameType.HEALTH_CHECK]
    finally:
        await asyncio.to_thread(stop_all, bridge.proc)


async def test_an_unavailable_gateway_is_a_json_rpc_error_and_the_connection_stays(
    stand_in: StandInGateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stand_in.status = http.HTTPStatus.SERVICE_UNAVAILABLE
    bridge = await asyncio.to_thread(start_bridge, tmp_path_factory.mktemp("standin"), stand_in.url)
    try:
        reader, writer = await open_raw(bridge)
        try:
            writer.write(encode_frame(FrameType.REQUEST, encode_json(PING)))
            response = orjson.loads((await next_frame(reader)).payload)  # type: ignore[union-attr]
            assert response["id"] == 1 and response["error"]["code"] == -32050 and "HTTP 503" in response["error"]["message"]
            # The gateway is back: the next request on the same connection opens the upstream.
            stand_in.status = http.HTTPStatus.SWITCHING_PROTOCOLS
            writer.write(encode_frame(FrameType.REQUEST, encode_json({**PING, "id": 2})))
            assert orjson.loads((await next_frame(reader)).payload) == {"jsonrpc": "2.0", "id": 2, "result": {}}  # type: ignore[union-attr]
            # The gateway connection is cut (no close frame): the session is gone, the client is told why.
            assert stand_in.server is not None
            for connection in stand_in.server.connections:
                connection.transport.abort()
            frames = await frames_until_eof(reader)
            assert [f.type for f in frames] == [FrameType.ERROR]
            code, message = parse_error_payload(frames[0].payload)
            assert code == "upstream_closed" and "the gateway closed the session" in message
        finally:
            writer.close()
    finally:
        await asyncio.to_thread(stop_all, bridge.proc)
