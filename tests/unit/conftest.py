"""The unit tier: the gateway's ASGI app driven through `httpx.ASGITransport` with its lifespan
run, sessions in the memory store, backends that are real MCP servers (the official SDK) served
in this event loop. No subprocess, no Redis."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import parse_config
from tests.support.inprocess import BASE_URL, AsgiSession, GatewayFactory, ServedApp, everything_server, namespaces
from tests.support.net import wait_until_async

READY_TIMEOUT = 10.0
#: Budgets out of the way unless a test sets its own.
NO_LIMITS = {"enabled": False}
NO_HEALTH_CHECKS = {"enabled": False}


@pytest.fixture(autouse=True)
def no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tier's rule, enforced: nothing here starts a process (such a test belongs in tests/integration)."""

    def refuse(args: Any, *_: Any, **__: Any) -> None:
        raise AssertionError(f"the unit tier starts no process, not {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def build_app(config: Mapping[str, Any]) -> Any:
    """The one place the unit tier builds the gateway (the composition root's entry point)."""
    from app.assembly import assemble

    return assemble(parse_config(dict(config)))


@contextlib.asynccontextmanager
async def running_gateway(config: Mapping[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, ready (/readyz 200), and a client talking to it in-process."""
    settings = {"rate_limits": NO_LIMITS, "health_checks": NO_HEALTH_CHECKS, **config}
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=READY_TIMEOUT) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=READY_TIMEOUT) as client:
            await wait_until_async(lambda: _ready(client), READY_TIMEOUT, 0.01, "gateway ready (/readyz 200)")
            yield client


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayFactory]:
    """`client = await gateway(config)`: a ready gateway app and a client of it, stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(config: Mapping[str, Any]) -> httpx.AsyncClient:
            return await stack.enter_async_context(running_gateway(config))

        yield start


@pytest.fixture(scope="session")
async def alpha() -> AsyncIterator[ServedApp]:
    """An everything-server named alpha, shared by the tier (nothing a test does changes it)."""
    async with everything_server("alpha") as served:
        yield served


@pytest.fixture(scope="session")
async def beta() -> AsyncIterator[ServedApp]:
    async with everything_server("beta") as served:
        yield served


@pytest.fixture
async def two(gateway: GatewayFactory, alpha: ServedApp, beta: ServedApp) -> AsgiSession:
    """An initialized session on a gateway in front of alpha and beta (prefixed), 64 KiB bodies."""
    session = AsgiSession(await gateway({"max_body_bytes": 65536, "namespaces": namespaces(alpha=alpha.url, beta=beta.url)}))
    await session.initialize()
    return session
