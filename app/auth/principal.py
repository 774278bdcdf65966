"""Who is calling, and which namespaces they may list and call."""

from __future__ import annotations

from dataclasses import dataclass

ALL = "mcp:*"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. Scopes: `mcp:*` everything, `mcp:<ns>` list and call in a
    namespace, `mcp:<ns>:read` list and read (prompts, resources, completion) but not call tools."""

    subject: str
    scopes: frozenset[str]
    kind: str = "anonymous"

    def can_read(self, namespace: str) -> bool:
        return bool({ALL, f"mcp:{namespace}", f"mcp:{namespace}:read"} & self.scopes)

    def can_call(self, namespace: str) -> bool:
        return bool({ALL, f"mcp:{namespace}"} & self.scopes)


ANONYMOUS = Principal("anonymous", frozenset({ALL}))
