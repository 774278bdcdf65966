"""Test support for every tier: real processes (Redis, MCP backends, the gateway) on loopback and
polling helpers here; `paths` (where the repository is), `inprocess` (the unit tier's servers and
ASGI client), `guard` (flaky backends, metrics), `bridge` (the TCP bridge), `ops/` (Prometheus,
promtool, the contract) and `terraform/` (terraform and moto) beside them."""

from .backends import EVERYTHING, Backend, start_backend, stdio_command
from .gateway import GatewayProc, start_gateway
from .net import (
    LOOPBACK,
    free_port,
    http_status,
    tcp_accepts,
    wait_for_http,
    wait_until,
    wait_until_async,
)
from .process import ManagedProcess, ProcessExited
from .redis import RedisServer

__all__ = [
    "EVERYTHING",
    "LOOPBACK",
    "Backend",
    "GatewayProc",
    "ManagedProcess",
    "ProcessExited",
    "RedisServer",
    "free_port",
    "http_status",
    "start_backend",
    "start_gateway",
    "stdio_command",
    "tcp_accepts",
    "wait_for_http",
    "wait_until",
    "wait_until_async",
]
