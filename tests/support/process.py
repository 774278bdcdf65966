"""Subprocesses for tests: output kept in a log file, and always stopped."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from .net import wait_until

T = TypeVar("T")


class ProcessExited(RuntimeError):
    """The process ended while a test was waiting for it to become ready."""


class ManagedProcess:
    """A process started by a test, with stdout and stderr in `log_path`.

    It runs in its own process group, so `stop()` can also kill whatever it spawned (a
    gateway's stdio backends) if it does not clean up after itself.
    """

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def start(self) -> ManagedProcess:
        """Start (or restart) the process; its output is appended to the log."""
        if self.running:
            raise RuntimeError(f"already running: {self.describe()}")
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.args)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL (to the whole group) if it has not exited within `timeout`."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self._popen.wait(timeout)
        self._kill_group()  # leftovers the process did not reap
        return self._popen.returncode

    def wait_ready(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check` until truthy; fail at once if the process exits, and show its log."""

        def alive_and_ready() -> T:
            if not self.running:
                raise ProcessExited(f"{what}: exited with {self.returncode}\n{self.describe()}")
            return check()

        return wait_until(alive_and_ready, timeout=timeout, message=lambda: f"{what}\n{self.describe()}")

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self) -> str:
        """The command and its log, for failure messages."""
        return f"--- {self.log_path} ---\n{self.read_log()}--- end of log ---"

    def _kill_group(self) -> None:
        assert self._popen is not None
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stdio_backend_pids(name: str, parent: int) -> list[int]:
    """Processes running everything.py --name NAME whose parent is `parent` (a gateway)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), None)
        named = any(a == b"--name" and b == name.encode() for a, b in itertools.pairwise(args))
        if named and ppid == parent and any(a.endswith(b"everything.py") for a in args):
            found.append(int(entry.name))
    return found
