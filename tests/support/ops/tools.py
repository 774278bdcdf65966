"""Running promtool and amtool (Debian packages `prometheus`, `prometheus-alertmanager`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def _run(tool: str, *args: str | Path, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} is not installed (scripts/test installs it)", pytrace=False)
    return subprocess.run(
        [binary, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS...`; the caller checks `returncode`, `stdout`, `stderr`."""
    return _run("promtool", *args, cwd=cwd)


def amtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`amtool ARGS...`; the caller checks `returncode`, `stdout`, `stderr`."""
    return _run("amtool", *args, cwd=cwd)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
