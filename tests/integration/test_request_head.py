"""A request head is bounded before anything reads it: in bytes and fields (431), and in time (408,
or a silent close for a connection that never sends a request), so neither a 25 MB header nor a
slowloris client costs the gateway memory or a connection forever; every other client goes on."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import LOOPBACK, GatewayProc, start_gateway, stdio_command
from tests.support.mcp_http import RawSession

MAX_HEADER_BYTES = 64 * 1024  # the default
MAX_HEADER_FIELDS = 100  # the default
HEAD_TIMEOUT = 1.0
HUGE_HEADER = 25 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    started = start_gateway(
        {
            "header_timeout_seconds": HEAD_TIMEOUT,
            "namespaces": {"local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]}},
        },
        tmp_path_factory.mktemp("request-head"),
    )
    yield started
    started.proc.stop()


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def send_huge_header(port: int) -> bytes:
    """Send a request whose one header is HUGE_HEADER bytes, as fast as the gateway takes it;
    the first bytes of the answer, if one came before the connection broke."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        chunk = b"a" * CHUNK
        try:
            for _ in range(HUGE_HEADER // CHUNK):
                sock.sendall(chunk)
        except OSError:
            pass  # Refused and closed: what is left of the header has nowhere to go.
        try:
            return sock.recv(64)
        except OSError:
            return b""


def assert_serving(gateway: GatewayProc) -> None:
    session = RawSession(gateway.url)
    try:
        session.initialize()
        assert session.call("ping")["result"] == {}
    finally:
        session.close()


def test_a_head_over_the_byte_limit_is_431_with_a_json_error(gateway: GatewayProc) -> None:
    assert httpx.get(f"{gateway.url}/healthz", headers={"x-big": "a" * (MAX_HEADER_BYTES - 1024)}).status_code == 200
    answer = httpx.get(f"{gateway.url}/healthz", headers={"x-big": "a" * (MAX_HEADER_BYTES + 1024)})
    assert answer.status_code == 431
    assert answer.json()["error"]["code"] == -32600
    assert f"exceeds {MAX_HEADER_BYTES} bytes" in answer.json()["error"]["message"]
    assert_serving(gateway)


def test_a_body_larger_than_the_head_limit_is_not_part_of_the_head(gateway: GatewayProc) -> None:
    session = RawSession(gateway.url)
    try:
        session.initialize()
        text = "x" * (4 * MAX_HEADER_BYTES)  # sent with its head, in the same socket writes
        answer = session.call("tools/call", {"name": "local__echo", "arguments": {"text": text}})
        assert answer["result"]["content"][0]["text"] == text
    finally:
        session.close()


def test_more_header_fields_than_the_limit_is_431(gateway: GatewayProc) -> None:
    fields = {f"x-field-{i}": "v" for i in range(MAX_HEADER_FIELDS - 10)}
    assert httpx.get(f"{gateway.url}/healthz", headers=fields).status_code == 200
    fields = {f"x-field-{i}": "v" for i in range(MAX_HEADER_FIELDS + 1)}
    answer = httpx.get(f"{gateway.url}/healthz", headers=fields)
    assert answer.status_code == 431
    assert f"more than {MAX_HEADER_FIELDS} header fields" in answer.json()["error"]["message"]
    assert "request head refused" in gateway.read_log()


def test_huge_headers_on_four_connections_do_not_grow_memory(gateway: GatewayProc) -> None:
    assert gateway.proc.pid is not None
    before = peak_rss_bytes(gateway.proc.pid)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send_huge_header, [gateway.port] * 4))
    grown = peak_rss_bytes(gateway.proc.pid) - before
    print(f"peak RSS grew by {grown / 2**20:.1f} MiB for 4 x {HUGE_HEADER / 2**20:.0f} MiB headers")
    assert grown < 32 * 2**20  # Unbounded, it grows by at least the 100 MiB sent.
    assert all(answer.startswith(b"HTTP/1.1 431") for answer in answers if answer)
    assert_serving(gateway)


def test_a_connection_that_sends_nothing_is_closed(gateway: GatewayProc) -> None:
    with socket.create_connection((LOOPBACK, gateway.port), timeout=HEAD_TIMEOUT + 15) as sock:
        opened = time.monotonic()
        assert sock.recv(1024) == b""  # The gateway closed it, without an answer.
        assert time.monotonic() - opened < HEAD_TIMEOUT + 10  # closed by the deadline (generous: a loaded machine), not left open


def test_a_slowloris_head_gets_408_and_others_are_served_meanwhile(gateway: GatewayProc) -> None:
    with socket.create_connection((LOOPBACK, gateway.port), timeout=HEAD_TIMEOUT + 15) as sock:
        opened = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = b""
        for i in range(int(HEAD_TIMEOUT * 20)):  # A header line every 100 ms, never the end of the head.
            try:
                sock.sendall(b"X-Drip-%d: x\r\n" % i)
            except OSError:
                break
            time.sleep(0.1)  # the client's pace (the behaviour under test), not synchronisation
        assert_serving(gateway)
        try:
            answer = sock.recv(4096)
        except OSError:
            pass
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - opened < HEAD_TIMEOUT + 10  # closed by the deadline (generous: a loaded machine), not left open
