"""Label values and the rules that bound them: request status, the gateway's own namespace, MCP
method names (anything else is `other`), breaker states, and how a caller appears (`UserLabel`)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, Literal

#: `status` of `mcp_gateway_requests_total` (and the log line): `success` the request was answered
#: (a tool result with `isError` included: the tool answered), `error` the gateway or a backend
#: failed it, `client_error` the caller's own mistake or a refusal of the caller (bad JSON-RPC,
#: unknown method or tool, invalid params, unauthenticated, forbidden, rate limited, unknown
#: session). Error-rate alerts and the success SLO count only `error`.
SUCCESS, ERROR, CLIENT_ERROR = "success", "error", "client_error"
#: `namespace`/`backend` of requests the gateway answers itself (initialize, ping) or merges from
#: several namespaces (aggregated lists). Namespace names start with a letter or digit, so this
#: never collides with one.
GATEWAY = "_gateway"
#: `method` of anything outside the MCP methods below (client-chosen strings would be unbounded).
OTHER_METHOD = "other"
MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
    }
)
BREAKER_STATES = ("closed", "open", "half_open")
UserLabelMode = Literal["raw", "hashed", "off"]
#: No identities in telemetry unless asked for (`raw`); see UserLabel.
DEFAULT_USER_LABEL: UserLabelMode = "hashed"


def method_label(method: Any) -> str:
    """The `method` label: an MCP method name, or `other`."""
    return method if method in MCP_METHODS else OTHER_METHOD


def subject(principal: Any) -> str:
    """The caller's name, from a Principal (`.subject`) or a plain string."""
    return str(getattr(principal, "subject", principal))


class UserLabel:
    """How the caller appears in metrics, spans and logs (config `telemetry.user_label`):
    `raw` the principal's subject, `hashed` a stable pseudonym (`u-` + 12 hex digits of its
    SHA-256), `off` not at all (None: the label or field is left out). `hashed` is the default:
    a subject is often an e-mail address, which has no place in a metrics or tracing backend.
    Series still grow with the number of callers (bounded per metric by the SDK's cardinality
    limit); `off` bounds them by methods, statuses and namespaces alone."""

    def __init__(self, mode: UserLabelMode = DEFAULT_USER_LABEL):
        if mode not in ("raw", "hashed", "off"):
            raise ValueError(f"user label mode must be raw, hashed or off, not {mode!r}")
        self.mode = mode
        self._hashed = lru_cache(maxsize=4096)(self._hash)

    @staticmethod
    def _hash(name: str) -> str:
        return "u-" + hashlib.sha256(name.encode()).hexdigest()[:12]

    def __call__(self, principal: Any) -> str | None:
        if self.mode == "off":
            return None
        name = subject(principal)
        return name if self.mode == "raw" else self._hashed(name)
