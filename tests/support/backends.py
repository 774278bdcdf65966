"""Test MCP backends: `tests/servers/everything.py` run as real processes."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .net import LOOPBACK, free_port, http_status, tcp_accepts
from .paths import SERVERS
from .process import ManagedProcess

EVERYTHING = SERVERS / "everything.py"
START_TIMEOUT = 15.0
NetworkTransport = Literal["http", "ws"]


@dataclass
class Backend:
    """A running everything-server: `url` is its MCP endpoint (http://…/mcp or ws://…/mcp)."""

    url: str
    name: str
    proc: ManagedProcess


def stdio_command(name: str, **options: object) -> list[str]:
    """The command line of an everything-server over stdio (for a gateway's stdio backend)."""
    return [sys.executable, str(EVERYTHING), "--name", name, *option_flags(options)]


def start_backend(name: str, log_dir: Path, transport: NetworkTransport = "http", **options: object) -> Backend:
    """Start an everything-server on a free loopback port and wait until it serves.

    `options` become flags: `json_response=True` -> `--json-response`, `page_size=2` ->
    `--page-size 2`; False and None leave a flag out.
    """
    if transport not in ("http", "ws"):
        raise ValueError(f"transport must be http or ws, not {transport!r} (stdio backends: stdio_command)")
    port = free_port()
    args = [*stdio_command(name, **options), "--transport", transport, "--host", LOOPBACK, "--port", str(port)]
    proc = ManagedProcess(args, log_dir / f"backend-{name}-{port}.log").start()
    url = f"{'ws' if transport == 'ws' else 'http'}://{LOOPBACK}:{port}/mcp"
    # Any HTTP answer from /mcp means the app is up; uvicorn listens only after startup, so
    # an accepted connection is enough for WebSocket.
    ready = (lambda: http_status(url) is not None) if transport == "http" else (lambda: tcp_accepts(LOOPBACK, port))
    try:
        proc.wait_ready(ready, START_TIMEOUT, f"backend {name} ({transport}) did not start serving {url}")
    except BaseException:
        proc.stop()
        raise
    return Backend(url=url, name=name, proc=proc)


def option_flags(options: dict[str, object]) -> list[str]:
    """Keyword options as command-line flags."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags += [flag, str(value)]
    return flags
