"""Helpers shared by the TCP bridge tests (no tests here): the bridge as a real process, raw
sockets, and frame reading with deadlines."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.tcp_bridge.client import read_frame
from app.tcp_bridge.codec import Frame
from tests.support import LOOPBACK, ManagedProcess, free_port, tcp_accepts
from tests.support.paths import REPO_ROOT

#: The probe of docs/mcpb.md, byte for byte, and the same in the compatibility layout.
PROBE = bytes.fromhex("4D 43 50 42 01 04 00 00 00 00 00 00")
COMPAT_PROBE = bytes.fromhex("4D 43 50 42 00 01 00 04 00 00 00 00")
DEADLINE = 10.0


@dataclass
class BridgeProc:
    host: str
    port: int
    proc: ManagedProcess

    def read_log(self) -> str:
        return self.proc.read_log()


def start_bridge(workdir: Path, gateway_ws: str, *args: str, env: Mapping[str, str] | None = None) -> BridgeProc:
    """`python -m app.tcp_bridge` on a free loopback port; ready when it accepts connections."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "app.tcp_bridge",
        "--listen",
        f"{LOOPBACK}:{port}",
        "--gateway",
        gateway_ws,
        "--metrics-port",
        "0",
        *args,
    ]
    proc = ManagedProcess(command, workdir / f"bridge-{port}.log", cwd=REPO_ROOT, env=env).start()
    try:
        proc.wait_ready(lambda: tcp_accepts(LOOPBACK, port), 15, f"bridge did not listen on {port}")
    except BaseException:
        proc.stop()
        raise
    return BridgeProc(LOOPBACK, port, proc)


def ws_url(gateway_url: str) -> str:
    return gateway_url.replace("http://", "ws://") + "/ws"


def unused_gateway() -> str:
    """A gateway address where nothing listens."""
    return f"ws://{LOOPBACK}:{free_port()}/ws"


async def open_raw(bridge: BridgeProc, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if rcvbuf is None:
        return await asyncio.open_connection(bridge.host, bridge.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (bridge.host, bridge.port))
    return await asyncio.open_connection(sock=sock)


async def next_frame(reader: asyncio.StreamReader, timeout: float = DEADLINE) -> Frame | None:
    """The next frame, or None at EOF; fails the test after `timeout`."""
    return await asyncio.wait_for(read_frame(reader), timeout)


async def frames_until_eof(reader: asyncio.StreamReader, timeout: float = DEADLINE) -> list[Frame]:
    frames: list[Frame] = []
    async with asyncio.timeout(timeout):
        while (frame := await read_frame(reader)) is not None:
            frames.append(frame)
    return frames


async def exchange(bridge: BridgeProc, data: bytes, *, half_close: bool = True, timeout: float = DEADLINE) -> list[Frame]:
    """Send raw bytes on a fresh connection (then FIN, like `nc -N`) and read every frame until EOF."""
    reader, writer = await open_raw(bridge)
    try:
        writer.write(data)
        if half_close:
            try:
                writer.write_eof()
            except OSError:
                pass  # the bridge has already closed (a refusal): its answer is still there to read
        return await frames_until_eof(reader, timeout)
    finally:
        writer.close()


def stop_all(*procs: ManagedProcess | None) -> None:
    for proc in procs:
        if proc is not None:
            proc.stop()
