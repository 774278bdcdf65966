"""One target resolution: which namespace a request goes to, and the request as that namespace's
backend must see it. What a request names (a tool or prompt by name, a resource by URI) is read
from its params in one place, for both the early guess (rate limits and telemetry count a refusal
under the namespace asked for) and the routing itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.pipeline.context import RequestContext
from app.pipeline.routing import PROMPT, TOOL, Namespace, Router
from app.state import SessionRecord

#: Requests routed to one namespace, and how to find it: by name (kind) or by URI.
ROUTED_BY_NAME = {"tools/call": TOOL, "prompts/get": PROMPT}
ROUTED_BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")

#: Lists a namespace on demand to learn a name (kind, exposed name) or a URI nobody knew.
LearnName = Callable[[RequestContext, SessionRecord, str, str], Awaitable[tuple[Namespace, str] | None]]
LearnUri = Callable[[RequestContext, SessionRecord, str], Awaitable[Namespace | None]]


@dataclass(frozen=True)
class Reference:
    """What a request names: `kind` (tool, prompt) for a name, None for a URI; `holder` is the dict
    of params that holds it under `key` (`params`, or `params.ref` for completion/complete)."""

    method: str
    kind: str | None
    holder: dict[str, Any]
    key: str

    @property
    def value(self) -> object:
        return self.holder.get(self.key)


def reference(method: str, params: dict[str, Any]) -> Reference | None:
    """What the request names, or None when it is not routed by name or URI."""
    if method in ROUTED_BY_NAME:
        return Reference(method, ROUTED_BY_NAME[method], params, "name")
    if method in ROUTED_BY_URI:
        return Reference(method, None, params, "uri")
    if method == "completion/complete":
        raw = params.get("ref")
        ref: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return Reference(method, PROMPT, ref, "name") if ref.get("type") == "ref/prompt" else Reference(method, None, ref, "uri")
    return None


class Targets:
    def __init__(self, router: Router, passthrough: bool, learn_name: LearnName, learn_uri: LearnUri):
        self.router = router
        #: One unprefixed namespace with one backend: every request goes there untouched.
        self.passthrough = passthrough
        self._learn_name = learn_name
        self._learn_uri = learn_uri

    def known(self, method: str, params: dict[str, Any]) -> str | None:
        """The namespace a request goes to when that is known without asking a backend."""
        ref = reference(method, params)
        value = ref.value if ref is not None else None
        if ref is None or not isinstance(value, str):
            return None
        if ref.kind is not None:
            found = self.router.resolve_name(ref.kind, value)
            return found[0].name if found else None
        ns = self.router.resolve_uri(value)
        return ns.name if ns else None

    async def resolve(
        self, ctx: RequestContext, record: SessionRecord, method: str, params: dict[str, Any], message: Message
    ) -> tuple[Namespace, Message]:
        """Which namespace serves this request, and the request as that backend must see it."""
        if self.passthrough and self.router.single is not None:
            # Transparent pass-through: nothing to rename, and the backend answers every request
            # itself (its own errors for unknown methods, tools and malformed params included).
            return self.router.single, message
        ref = reference(method, params)
        if ref is None:
            raise GatewayError(ErrorCode.METHOD_NOT_FOUND, f"Method not found: '{method}'", data={"method": method})
        exposed = ref.value
        if not isinstance(exposed, str):
            raise GatewayError(ErrorCode.INVALID_PARAMS, f"Invalid params: {method} needs a string '{ref.key}'")
        if ref.kind is None:
            ns = self.router.resolve_uri(exposed) or await self._learn_uri(ctx, record, exposed)
            if ns is None:
                raise GatewayError(ErrorCode.INVALID_PARAMS, f"Unknown resource: '{exposed}'", data={"uri": exposed})
            return ns, message
        found = self.router.resolve_name(ref.kind, exposed) or await self._learn_name(ctx, record, ref.kind, exposed)
        if found is None:
            raise GatewayError(ErrorCode.INVALID_PARAMS, f"Unknown {ref.kind}: '{exposed}'", data={ref.kind: exposed})
        ns, original = found
        if original == exposed:
            return ns, message
        renamed = {**ref.holder, ref.key: original}
        new_params = renamed if ref.holder is params else {**params, "ref": renamed}
        return ns, {**message, "params": new_params}
