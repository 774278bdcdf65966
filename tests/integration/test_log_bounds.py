"""What a caller sends reaches the gateway's log lines and spans bounded and without secrets: a
megabyte id or tool name costs a log line a few hundred bytes, and a credential in a URL's query
string never appears (uvicorn's own handshake lines included)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support import GatewayProc, start_gateway, stdio_command, wait_until
from tests.support.mcp_http import RawSession
from tests.support.otlp import OtlpReceiver

HUGE = 1024 * 1024
#: Longest a log line or span attribute may be when a caller sends a megabyte (generous: the
#: gateway caps fields at 512 characters and messages at 2048).
LINE_BOUND = 8 * 1024


@dataclass
class Stack:
    gateway: GatewayProc
    otlp: OtlpReceiver

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines written so far (complete ones only: the gateway may be mid-line)."""
        return [json.loads(line) for line in self.gateway.read_log().split("\n")[:-1] if line.startswith("{")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("log-bounds")
    with OtlpReceiver() as otlp:
        gateway = start_gateway(
            {"namespaces": {"local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]}}},
            workdir,
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_BLRP_SCHEDULE_DELAY": "100",
            },
        )
        yield Stack(gateway, otlp)
        gateway.proc.stop()


def test_a_megabyte_id_and_tool_name_make_bounded_log_lines_and_spans(stack: Stack) -> None:
    session = RawSession(stack.gateway.url)
    session.initialize()
    marker = "m" + secrets.token_hex(8)
    huge_id, huge_tool = marker + "i" * HUGE, marker + "t" * HUGE
    answer = session.post({"jsonrpc": "2.0", "id": huge_id, "method": "tools/call", "params": {"name": huge_tool, "arguments": {}}})
    assert answer.status_code == 200
    assert answer.json()["id"] == huge_id  # The caller gets its id back whole; only telemetry caps it.
    wait_until(lambda: any(marker in line.get("request_id", "") for line in stack.lines()), timeout=30)
    logged = [line for line in stack.gateway.read_log().splitlines() if marker in line]
    assert logged and all(len(line) < LINE_BOUND for line in logged)
    completed = next(line for line in stack.lines() if line["message"] == "request completed" and marker in line["request_id"])
    assert completed["tool"].startswith(marker) and "more chars]" in completed["tool"]
    wait_until(lambda: any(marker in str(s.attributes.get("jsonrpc.request.id")) for s in stack.otlp.spans()), timeout=30)
    spans = [s for s in stack.otlp.spans() if marker in str(s.attributes.get("jsonrpc.request.id"))]
    assert all(len(str(value)) < LINE_BOUND for span in spans for value in span.attributes.values())
    # Log records are exported in batches of their own, after the spans: wait for them too.
    wait_until(lambda: any(marker in json.dumps([r.body, r.attributes], default=str) for r in stack.otlp.logs()), timeout=30)
    records = [r for r in stack.otlp.logs() if marker in json.dumps([r.body, r.attributes], default=str)]
    assert records and all(len(json.dumps([r.body, r.attributes], default=str)) < LINE_BOUND for r in records)


async def test_query_string_secrets_never_reach_the_log(stack: Stack) -> None:
    secret = "sk-" + secrets.token_hex(16)
    url = stack.gateway.url.replace("http://", "ws://") + f"/ws?api_key={secret}&mode=x"
    async with connect(url, subprotocols=["mcp"], proxy=None) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "mcp"
    wait_until(lambda: "/ws?api_key=[REDACTED]" in stack.gateway.read_log(), timeout=30)
    assert secret not in stack.gateway.read_log()
    assert all(secret not in json.dumps([r.body, r.attributes], default=str) for r in stack.otlp.logs())
