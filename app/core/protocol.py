"""MCP protocol constants the gateway negotiates and checks, and the type check of params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.jsonrpc import ErrorCode, GatewayError

#: Streamable HTTP revisions served on `/mcp`, oldest first.
SUPPORTED_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"


def negotiate(requested: object) -> str:
    """The client's version when we speak it, else our latest (the client may then disconnect)."""
    return requested if isinstance(requested, str) and requested in SUPPORTED_VERSIONS else LATEST_VERSION


#: `logging/setLevel` levels, least severe first (the syslog severities MCP uses).
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

#: What a params field must be: its description in errors, and the test.
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "id": ("a string or an integer", lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)),
    "level": (f"one of {', '.join(LOG_LEVELS)}", lambda v: v in LOG_LEVELS),
    "ref": ("'ref/prompt' or 'ref/resource'", lambda v: v in ("ref/prompt", "ref/resource")),
}
_CURSOR = (("cursor", "string", False),)
_BY_URI = (("uri", "string", True),)
_NAMED = (("name", "string", True), ("arguments", "object", False))
#: Per method, the params fields anything on the way reads: (dotted path, kind, required). A
#: nested path is checked only when its parent is present (the parent's own entry comes first).
PARAM_FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "initialize": (("protocolVersion", "string", False), ("capabilities", "object", False), ("clientInfo", "object", False)),
    "tools/list": _CURSOR,
    "prompts/list": _CURSOR,
    "resources/list": _CURSOR,
    "resources/templates/list": _CURSOR,
    "tools/call": _NAMED,
    "prompts/get": _NAMED,
    "resources/read": _BY_URI,
    "resources/subscribe": _BY_URI,
    "resources/unsubscribe": _BY_URI,
    "completion/complete": (
        ("ref", "object", True),
        ("ref.type", "ref", True),
        ("argument", "object", False),
        ("argument.name", "string", False),
        ("argument.value", "string", False),
        ("context", "object", False),
    ),
    "logging/setLevel": (("level", "level", True),),
    "notifications/cancelled": (("requestId", "id", False), ("reason", "string", False)),
    "notifications/progress": (("progressToken", "id", True),),
}
#: Every message's params may carry `_meta`, and in it a progress token.
COMMON_FIELDS = (("_meta", "object", False), ("_meta.progressToken", "id", False))
#: The field a completion reference names its target by, per reference type.
REF_TARGET = {"ref/prompt": "name", "ref/resource": "uri"}


def _lookup(params: dict[str, Any], path: str) -> tuple[bool, bool, Any]:
    """(parent present, field present, value) of a dotted path."""
    holder: Any = params
    *parents, last = path.split(".")
    for part in parents:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if not isinstance(holder, dict):
        return False, False, None
    return True, last in holder, holder.get(last)


def check_params(message: dict[str, Any]) -> None:
    """Refuse a request or notification whose params fields have the wrong type, with -32602
    naming the field: the one place the pipeline's reads of params are made safe."""
    params = message.get("params") or {}
    method = message["method"]
    fields = (*COMMON_FIELDS, *PARAM_FIELDS.get(method, ()))
    if method == "completion/complete":
        ref = params.get("ref")
        ref_type = ref.get("type") if isinstance(ref, dict) else None
        if isinstance(ref_type, str) and ref_type in REF_TARGET:
            fields += ((f"ref.{REF_TARGET[ref_type]}", "string", True),)
    for path, kind, required in fields:
        parent, present, value = _lookup(params, path)
        description, valid = _KINDS[kind]
        if (present and not valid(value)) or (parent and required and not present):
            status = 400 if "id" not in message else 200
            raise GatewayError(
                ErrorCode.INVALID_PARAMS,
                f"Invalid params: {method} needs '{path}' to be {description}",
                data={"field": path},
                http_status=status,
            )
