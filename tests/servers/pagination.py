"""Cursor pagination for a FastMCP server's tools, prompts and resources lists.

FastMCP always answers a list in one page and ignores `cursor`; the lowlevel server accepts
handlers that take the request and return a result with `nextCursor`, so these replace
FastMCP's list handlers with paged views of the same lists.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from mcp import types
from mcp.server.fastmcp import FastMCP
from mcp.shared.exceptions import McpError

T = TypeVar("T")
PagedRequest = types.ListToolsRequest | types.ListPromptsRequest | types.ListResourcesRequest


def paginate(server: FastMCP, page_size: int) -> None:
    """Serve `tools/list`, `prompts/list` and `resources/list` `page_size` items at a time."""
    lowlevel = server._mcp_server  # FastMCP exposes no public handle to its protocol server.

    @lowlevel.list_tools()
    async def list_tools(request: types.ListToolsRequest) -> types.ListToolsResult:
        tools, cursor = page(await server.list_tools(), request, page_size)
        return types.ListToolsResult(tools=tools, nextCursor=cursor)

    @lowlevel.list_prompts()
    async def list_prompts(request: types.ListPromptsRequest) -> types.ListPromptsResult:
        prompts, cursor = page(await server.list_prompts(), request, page_size)
        return types.ListPromptsResult(prompts=prompts, nextCursor=cursor)

    @lowlevel.list_resources()
    async def list_resources(request: types.ListResourcesRequest) -> types.ListResourcesResult:
        resources, cursor = page(await server.list_resources(), request, page_size)
        return types.ListResourcesResult(resources=resources, nextCursor=cursor)


def page(items: Sequence[T], request: PagedRequest | None, page_size: int) -> tuple[list[T], str | None]:
    """The page the request's cursor points at, and the cursor of the next page (None at the end).

    The lowlevel server calls the tools handler with no request to refresh its tool cache
    before a call; that internal caller gets the whole list so every tool stays known.
    """
    if request is None:
        return list(items), None
    cursor = request.params.cursor if request.params else None
    start = _decode(cursor) if cursor else 0
    end = start + page_size
    return list(items[start:end]), _encode(end) if end < len(items) else None


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode(cursor: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "offset" and offset.isdigit():
            return int(offset)
    except ValueError:
        pass
    raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"Invalid cursor: {cursor!r}"))
