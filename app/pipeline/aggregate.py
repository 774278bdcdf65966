"""Lists across namespaces (`tools/list`, `prompts/list`, `resources/list`,
`resources/templates/list`) with pagination that stays correct across backends.

A gateway cursor is `[namespace index, upstream cursor]`. A page holds the rest of one namespace's
current page plus the first pages of the namespaces after it, up to the first one that has more
to give; its cursor points there. Each upstream page is fetched whole, so nothing is skipped or
repeated however the backends paginate. A namespace that fails is left out of the page (and
logged) rather than failing the whole list: one sick backend must not hide the healthy ones.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.pipeline.routing import PROMPT, RESOURCE, TEMPLATE, TOOL, Namespace, Router

log = logging.getLogger("mcp_gateway.aggregate")


@dataclass(frozen=True)
class ListKind:
    method: str
    result_key: str
    kind: str
    key_field: str


LISTS = {
    k.method: k
    for k in (
        ListKind("tools/list", "tools", TOOL, "name"),
        ListKind("prompts/list", "prompts", PROMPT, "name"),
        ListKind("resources/list", "resources", RESOURCE, "uri"),
        ListKind("resources/templates/list", "resourceTemplates", TEMPLATE, "uriTemplate"),
    )
}

#: Fetch one page of a list from a namespace: (namespace, upstream cursor) -> result object.
FetchPage = Callable[[Namespace, str | None], Awaitable[dict[str, Any]]]


def encode_cursor(index: int, upstream: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([index, upstream])).decode()


def decode_cursor(cursor: Any, count: int) -> tuple[int, str]:
    try:
        index, upstream = orjson.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        if isinstance(index, int) and 0 <= index < count and isinstance(upstream, str):
            return index, upstream
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise GatewayError(ErrorCode.INVALID_PARAMS, "Invalid params: unknown or malformed cursor")


def expose_items(router: Router, kind: ListKind, ns: Namespace, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rename a namespace's items as clients see them, and learn who serves what."""
    items = result.get(kind.result_key) or []
    for item in items:
        if not isinstance(item, dict):
            continue
        key = item.get(kind.key_field)
        if isinstance(key, str):
            router.learn(kind.kind, ns, key)
        if ns.prefix and isinstance(item.get("name"), str):
            item["name"] = router.expose(ns, item["name"])
    return items


async def aggregate(
    router: Router, kind: ListKind, params: dict[str, Any], fetch: FetchPage, visible: Callable[[Namespace], bool]
) -> dict[str, Any]:
    """One page of the merged list, over the namespaces the caller may see."""
    namespaces = list(router.namespaces.values())
    start, first_cursor = (0, None)
    if params.get("cursor") is not None:
        start, first_cursor = decode_cursor(params["cursor"], len(namespaces))
    wanted = [(i, ns) for i, ns in enumerate(namespaces) if i >= start and visible(ns)]
    pages = await asyncio.gather(
        *(fetch(ns, first_cursor if i == start else None) for i, ns in wanted),
        return_exceptions=True,
    )
    merged: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    for (index, ns), page in zip(wanted, pages, strict=False):
        if isinstance(page, BaseException):
            if isinstance(page, GatewayError) and page.code == ErrorCode.METHOD_NOT_FOUND:
                continue  # This server offers no such list: nothing to merge, nothing wrong.
            if index == start and first_cursor is not None and isinstance(page, GatewayError) and page.code == ErrorCode.INVALID_PARAMS:
                raise page  # The backend refused the client's cursor: the client's error, not a sick backend.
            failures.append(page)
            log.warning("namespace left out of %s: %s", kind.method, page, extra={"namespace": ns.name})
            continue
        merged.extend(expose_items(router, kind, ns, page))
        next_cursor = page.get("nextCursor")
        if next_cursor:
            return {kind.result_key: merged, "nextCursor": encode_cursor(index, str(next_cursor))}
    if failures and len(failures) == len(pages) and isinstance(failures[0], GatewayError):
        raise failures[0]
    return {kind.result_key: merged}


def page_result(message: Message) -> dict[str, Any]:
    """The result of an upstream list response, or its error raised as a gateway error."""
    if "error" in message:
        raise GatewayError.from_error(message["error"])
    result = message.get("result")
    return result if isinstance(result, dict) else {}
