"""A gateway in front of one everything-server per backend transport, for edge and pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import Backend, start_backend, stdio_command
from .gateway import GatewayProc, start_gateway


@dataclass
class EveryTransport:
    """The gateway and its network backends: namespaces `web` (HTTP), `sock` (WebSocket), `local` (stdio)."""

    gateway: GatewayProc
    web: Backend
    sock: Backend


@contextmanager
def every_transport(workdir: Path, settings: Mapping[str, Any]) -> Iterator[EveryTransport]:
    """Start both network backends side by side, then the gateway with `settings` plus the three
    namespaces; stop everything afterwards, also when a start fails."""
    with ThreadPoolExecutor(2) as pool:  # Independent processes: start them side by side.
        starting = [pool.submit(start_backend, "web", workdir, "http"), pool.submit(start_backend, "sock", workdir, "ws")]
    started = [f.result() for f in starting if f.exception() is None]
    procs = [b.proc for b in started]
    try:
        if len(started) < 2:
            raise next(exc for f in starting if (exc := f.exception()) is not None)
        web, sock = started
        namespaces = {
            "web": {"backends": [{"name": "web-1", "url": web.url}]},
            "sock": {"backends": [{"name": "sock-1", "url": sock.url}]},
            "local": {"backends": [{"name": "local-1", "command": stdio_command("local")}]},
        }
        gateway = start_gateway({**settings, "namespaces": namespaces}, workdir)
        procs.append(gateway.proc)
        yield EveryTransport(gateway, web, sock)
    finally:
        for proc in reversed(procs):
            proc.stop()
