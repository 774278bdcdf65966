"""Catalogue and routing in-process: lists merged across namespaces with their prefixes, calls
routed to the namespace's backend with the prefix stripped, unknown names, and the gateway's
cursors walking every namespace's pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.inprocess import AsgiSession, GatewayFactory, ServedApp, everything_server, namespaces, text_of

#: Paged backends: 14 tools each (9 of their own, 5 extra), two at a time.
PAGED = {"page_size": 2, "extra_tools": 5}
MAX_PAGES = 50


async def tool_names(session: AsgiSession, max_pages: int = MAX_PAGES) -> list[list[str]]:
    """The pages of `tools/list`, following `nextCursor` from the first page to the last."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {}
    for _ in range(max_pages):
        answer = await session.call("tools/list", params)
        assert "result" in answer, answer
        pages.append([tool["name"] for tool in answer["result"]["tools"]])
        cursor = answer["result"].get("nextCursor")
        if not cursor:
            return pages
        params = {"cursor": cursor}
    raise AssertionError(f"tools/list: more than {max_pages} pages")


async def direct_tools(server: ServedApp) -> list[str]:
    """The backend's own tool list, asked without the gateway."""
    async with httpx.AsyncClient(base_url=server.url.removesuffix("/mcp"), timeout=10) as client:
        session = AsgiSession(client)
        await session.initialize()
        return [name for page in await tool_names(session) for name in page]


async def test_tools_of_every_namespace_are_listed_with_their_prefix(gateway: GatewayFactory, alpha: ServedApp, beta: ServedApp) -> None:
    config = namespaces(alpha=alpha.url, beta=beta.url)
    config["beta"]["prefix"] = False
    session = AsgiSession(await gateway({"namespaces": config}))
    await session.initialize()
    [names] = await tool_names(session, max_pages=1)
    own = await direct_tools(alpha)
    assert names == [f"alpha__{name}" for name in own] + own  # Configuration order; beta unprefixed.


async def test_a_call_is_routed_to_its_namespace_with_the_prefix_stripped(two: AsgiSession) -> None:
    assert text_of(await two.tool("alpha__whoami")) == "alpha"
    assert text_of(await two.tool("beta__whoami")) == "beta"
    assert text_of(await two.tool("beta__echo", text="hi")) == "hi"


@pytest.mark.parametrize("name", ["nowhere__echo", "echo", "alpha__"])
async def test_an_unknown_tool_is_invalid_params_naming_it(two: AsgiSession, name: str) -> None:
    answer = await two.tool(name)
    assert answer["error"]["code"] == -32602 and name in answer["error"]["message"], answer


async def test_a_tool_the_backend_does_not_know_is_its_own_tool_error(two: AsgiSession) -> None:
    answer = await two.tool("alpha__no_such_tool")
    assert answer["result"]["isError"] is True, answer


@pytest.fixture(scope="module")
async def paged() -> AsyncIterator[tuple[ServedApp, ServedApp]]:
    async with everything_server("one", **PAGED) as one, everything_server("two", **PAGED) as two:
        yield one, two


async def test_walking_the_merged_list_visits_every_tool_of_every_namespace_once_in_order(
    gateway: GatewayFactory, paged: tuple[ServedApp, ServedApp], alpha: ServedApp
) -> None:
    one, two = paged
    session = AsgiSession(await gateway({"namespaces": namespaces(one=one.url, gamma=alpha.url, two=two.url)}))
    await session.initialize()
    pages = await tool_names(session)
    paged_own, unpaged_own = await direct_tools(one), await direct_tools(alpha)
    expected = [f"one__{n}" for n in paged_own] + [f"gamma__{n}" for n in unpaged_own] + [f"two__{n}" for n in paged_own]
    assert [name for page in pages for name in page] == expected
    assert len(pages) > 2 and all(pages)


@pytest.mark.parametrize("cursor", ["not-base64!", "e30=", 5])
async def test_a_malformed_cursor_is_invalid_params(two: AsgiSession, cursor: Any) -> None:
    answer = await two.call("tools/list", {"cursor": cursor})
    assert answer["error"]["code"] == -32602, answer
