"""The catalogue: what the namespaces serve. Lists (forwarded verbatim from a single namespace,
else aggregated across the namespaces the caller may read) and learning who serves an unprefixed
name or a URI nobody knew (by listing, at most once per RELEARN_SECONDS), forgotten when a
namespace says its list changed."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message, is_response, result_response
from app.pipeline.aggregate import LISTS, ListKind, aggregate, expose_items, page_result
from app.pipeline.context import RequestContext
from app.pipeline.routing import PROMPT, RESOURCE, TEMPLATE, TOOL, Namespace, Router
from app.pipeline.upstreams import Upstreams
from app.state import SessionRecord

#: After relearning a namespace's names or URIs (for a name or URI nobody knew), the gateway does
#: not list that namespace again for this long unless the namespace says its list changed.
RELEARN_SECONDS = 10.0
LIST_CHANGED_KIND = {
    "notifications/tools/list_changed": (TOOL,),
    "notifications/prompts/list_changed": (PROMPT,),
    "notifications/resources/list_changed": (RESOURCE, TEMPLATE),
}

#: Relays a request to one namespace (the single namespace's list goes through it verbatim).
Forward = Callable[[RequestContext, SessionRecord, Namespace, Message], AsyncGenerator[Event, None]]


class Catalogue:
    def __init__(self, router: Router, upstreams: Upstreams):
        self.router = router
        self.upstreams = upstreams
        #: When each (kind, namespace) was last listed to learn, and the listing under way, which
        #: concurrent requests share.
        self._learned_at: dict[tuple[str, str], float] = {}
        self._learning: dict[tuple[str, str], asyncio.Future[None]] = {}

    def readable(self, ctx: RequestContext) -> list[Namespace]:
        return [ns for ns in self.router.namespaces.values() if ctx.principal.can_read(ns.name)]

    # -- lists --------------------------------------------------------------------------------
    async def listing(
        self, ctx: RequestContext, record: SessionRecord, message: Message, kind: ListKind, forward: Forward
    ) -> AsyncGenerator[Event, None]:
        only = self.router.single
        if only is not None and not ctx.principal.can_read(only.name):
            yield Event(result_response(message["id"], {kind.result_key: []}))
            return
        if only is not None:
            # One namespace: forward verbatim (cursors, _meta and all), renaming only if prefixed.
            async with aclosing(forward(ctx, record, only, message)) as events:
                async for event in events:
                    if event.message is not None and is_response(event.message) and isinstance(event.message.get("result"), dict):
                        expose_items(self.router, kind, only, event.message["result"])
                    yield event
            return
        params = message.get("params") or {}

        async def fetch(ns: Namespace, cursor: str | None) -> dict[str, Any]:
            return await self._fetch_page(ctx, record, ns, kind, cursor)

        result = await aggregate(self.router, kind, params, fetch, lambda ns: ctx.principal.can_read(ns.name))
        yield Event(result_response(message["id"], result))

    async def _fetch_page(
        self, ctx: RequestContext, record: SessionRecord, ns: Namespace, kind: ListKind, cursor: str | None
    ) -> dict[str, Any]:
        params = {"cursor": cursor} if cursor else {}
        request = {"jsonrpc": "2.0", "id": f"gateway-list-{secrets.token_hex(4)}", "method": kind.method, "params": params}
        response = None
        async for event in self.upstreams.call(record, ns, request, ctx.headers, ctx.observer):
            if event.message is not None and is_response(event.message):
                response = event.message
        if response is None:
            raise GatewayError(ErrorCode.BACKEND_UNAVAILABLE, f"Backend for namespace '{ns.name}' did not answer {kind.method}")
        return page_result(response)

    # -- learning who serves what -------------------------------------------------------------
    async def learn_name(self, ctx: RequestContext, record: SessionRecord, kind: str, exposed: str) -> tuple[Namespace, str] | None:
        """A replica that has not listed yet learns unprefixed names on demand, only in the
        namespaces the caller may read (what it may not see is not listed on its behalf)."""
        method = "tools/list" if kind == TOOL else "prompts/list"
        readable = [ns for ns in self.router.unprefixed if ctx.principal.can_read(ns.name)]
        await self._learn_all(ctx, record, LISTS[method], readable)
        return self.router.resolve_name(kind, exposed)

    async def learn_uri(self, ctx: RequestContext, record: SessionRecord, uri: str) -> Namespace | None:
        namespaces = self.readable(ctx)
        for kind in (LISTS["resources/list"], LISTS["resources/templates/list"]):
            await self._learn_all(ctx, record, kind, namespaces)
        return self.router.resolve_uri(uri)

    async def _learn_all(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, namespaces: list[Namespace]) -> None:
        results = await asyncio.gather(*(self._learn_once(ctx, record, kind, ns) for ns in namespaces), return_exceptions=True)
        for result in results:
            if isinstance(result, GatewayError) and result.code == ErrorCode.CONFIGURATION_ERROR:
                raise result

    async def _learn_once(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, ns: Namespace) -> None:
        """List a namespace to learn what it serves, at most once per RELEARN_SECONDS (unknown names
        and URIs are the caller's to choose: each must not cost a walk of every list); concurrent
        requests share the listing under way."""
        key = (kind.kind, ns.name)
        running = self._learning.get(key)
        if running is None:
            if time.monotonic() - self._learned_at.get(key, -math.inf) < RELEARN_SECONDS:
                return
            self._learned_at[key] = time.monotonic()
            running = self._learning[key] = asyncio.ensure_future(self._learn(ctx, record, kind, ns))
            running.add_done_callback(partial(self._learned, key))
        await asyncio.shield(running)

    def _learned(self, key: tuple[str, str], listing: asyncio.Future[None]) -> None:
        self._learning.pop(key, None)
        if not listing.cancelled():
            listing.exception()  # Retrieved: the waiters got it, none may be left to.

    async def _learn(self, ctx: RequestContext, record: SessionRecord, kind: ListKind, ns: Namespace) -> None:
        cursor: str | None = None
        while True:
            page = await self._fetch_page(ctx, record, ns, kind, cursor)
            expose_items(self.router, kind, ns, page)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def forget(self, namespace: str, method: str) -> None:
        """The namespace's list changed: drop what was learned of it; it may be relearned at once."""
        for kind in LIST_CHANGED_KIND.get(method, ()):
            self.router.forget(kind, namespace)
            self._learned_at.pop((kind, namespace), None)
