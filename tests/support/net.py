"""Loopback ports and polling: how tests wait for things without sleeping blindly."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str | Callable[[], str] = "") -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    Exceptions from `predicate` propagate at once (a predicate can give up early, e.g. when
    the process it waits for has died). On timeout raises TimeoutError with `message`.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(_timeout_message(message, timeout))
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """`wait_until` for async tests: sleeps without blocking the event loop; `predicate` may be async."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise TimeoutError(_timeout_message(message, timeout))
        await anyio.sleep(interval)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of a GET to `url`, or None when nothing answers (yet)."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.TransportError:
        return None


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_http(url: str, timeout: float = 10.0, expect_status: int | None = None) -> int:
    """Wait until `url` answers (with `expect_status`, if given); return the status."""
    return wait_until(
        lambda: _status_matches(http_status(url), expect_status),
        timeout=timeout,
        message=f"{url} did not answer{f' {expect_status}' if expect_status else ''}",
    )


def _status_matches(status: int | None, expected: int | None) -> int | None:
    if status is None or (expected is not None and status != expected):
        return None
    return status


def _timeout_message(message: str | Callable[[], str], timeout: float) -> str:
    text = message() if callable(message) else message
    return f"timed out after {timeout:g} s" + (f": {text}" if text else "")
