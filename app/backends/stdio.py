"""Stdio backends: the MCP server runs as a child process speaking newline-delimited JSON."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from app.backends.multiplexed import MultiplexedBackend

log = logging.getLogger("mcp_gateway.backends")

#: Longest line accepted from a child; a longer one ends the connection instead of growing memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Only these variables of the gateway's environment reach a child (never the gateway's secrets).
INHERITED_ENV = ("HOME", "LANG", "LC_ALL", "LOGNAME", "PATH", "SHELL", "TERM", "TMPDIR", "TZ", "USER")


class StdioBackend(MultiplexedBackend):
    """One child process per replica, started on first use and restarted after it dies."""

    _proc: asyncio.subprocess.Process | None = None

    def _environment(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
        env.update(self.config.env)
        return env

    async def _connect(self) -> None:
        command = self.config.command or []
        self._write_lock = asyncio.Lock()
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(),
            limit=MAX_LINE_BYTES,
            start_new_session=True,
        )
        self._background.spawn(self._relay_stderr(self._proc))

    async def _relay_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Child diagnostics become gateway log lines naming the backend."""
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            log.info(
                "backend stderr: %s",
                line.decode(errors="replace").rstrip()[:2000],
                extra={"namespace": self.namespace, "backend": self.name},
            )

    async def _write(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise ConnectionError("backend process is not running")
        async with self._write_lock:
            proc.stdin.write(data + b"\n")
            await proc.stdin.drain()

    async def _read(self) -> bytes | None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return None
        line = await proc.stdout.readline()
        return line or None

    async def _disconnect(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
