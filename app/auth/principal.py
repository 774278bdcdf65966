"""Who is calling, and which namespaces they may list and call."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import orjson

ALL = "mcp:*"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. Scopes: `mcp:*` everything, `mcp:<ns>` list and call in a
    namespace, `mcp:<ns>:read` list and read (prompts, resources, completion) but not call tools."""

    subject: str
    scopes: frozenset[str]
    kind: str = "anonymous"
    #: Who vouches for the subject: a JWT's `iss` (None for API keys and unsigned identities).
    issuer: str | None = None

    @cached_property
    def identity(self) -> str:
        """Who the caller is, unambiguously: credential type, issuer and subject. Sessions and
        rate-limit budgets belong to it, so a JWT whose `sub` equals an API key's subject (or
        another issuer's) is someone else. Metrics and logs show the subject alone."""
        return orjson.dumps([self.kind, self.issuer, self.subject]).decode()

    def can_read(self, namespace: str) -> bool:
        return bool({ALL, f"mcp:{namespace}", f"mcp:{namespace}:read"} & self.scopes)

    def can_call(self, namespace: str) -> bool:
        return bool({ALL, f"mcp:{namespace}"} & self.scopes)


ANONYMOUS = Principal("anonymous", frozenset({ALL}))
