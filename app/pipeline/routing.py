"""Namespaces and names: which backend serves a tool, prompt or resource the client names.

Prefixed namespaces expose `<namespace><separator><name>`; unprefixed ones expose names as the
backend does, and URIs are never rewritten. Unprefixed names and URIs are learned from listings (a
replica that has not listed yet learns on demand), and two namespaces exposing the same name is a
configuration error, reported as such instead of silently routing to one of them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from app.core.jsonrpc import ErrorCode, GatewayError
from app.pipeline.replica import Replica

#: Item kinds and the field that names them.
TOOL, PROMPT, RESOURCE, TEMPLATE = "tool", "prompt", "resource", "template"


@dataclass
class Namespace:
    """Replicas of one MCP server, balanced by least in-flight calls or round robin."""

    name: str
    prefix: bool
    replicas: list[Replica]
    balance: str = "least_inflight"
    _turn: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def replica(self, name: str) -> Replica | None:
        return next((r for r in self.replicas if r.name == name), None)

    def pick(self, exclude: Replica | None = None) -> Replica:
        """The best replica (see `ranked`); `exclude` only when there is no other."""
        return self.ranked(exclude)[0]

    def ranked(self, avoid: Replica | None = None) -> list[Replica]:
        """Every replica, best first: circuit breaker letting calls through, not marked down, healthy
        (last exchange or health check), then by the balancing rule; `avoid` last. Marked-down
        replicas come in the order they recover."""
        groups: dict[tuple[bool, bool, bool, bool], list[Replica]] = {}
        for b in self.replicas:
            key = (b is avoid, not b.breaker.allows(), not b.available, b.healthy is False)
            groups.setdefault(key, []).append(b)
        turn = next(self._turn)
        ranked: list[Replica] = []
        for key in sorted(groups):
            group = groups[key]
            if key[2]:
                group.sort(key=lambda b: b.down_until)
            elif self.balance == "least_inflight":
                # Ties (typically all idle, when sessions open) take turns instead of all landing
                # on the first replica: upstream sessions stick to the replica they open on.
                least = min(b.in_flight for b in group)
                ties = [b for b in group if b.in_flight == least]
                group = _rotate(ties, turn) + sorted((b for b in group if b.in_flight != least), key=lambda b: b.in_flight)
            else:
                group = _rotate(group, turn)
            ranked += group
        return ranked


def _rotate(items: list[Replica], turn: int) -> list[Replica]:
    shift = turn % len(items) if items else 0
    return items[shift:] + items[:shift]


def template_pattern(template: str) -> re.Pattern[str]:
    """An RFC 6570 URI template as a regex: `{x}` matches one segment, `{+x}`/`{#x}` anything."""
    parts = re.split(r"(\{[^}]*\})", template)
    regex = "".join((".*" if part[1:2] in "+#" else "[^/?#]*") if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(regex + r"\Z")


def _clash_advice(kind: str, unprefixed: str) -> str:
    """What fixes a clash: a prefix renames tools and prompts, but URIs are never rewritten."""
    if kind in (TOOL, PROMPT):
        return f"set 'prefix: true' on namespace {unprefixed!r}"
    return (
        "a prefix does not rename URIs, so only one namespace may serve it: "
        "change the URI in one of the servers, or serve both from one namespace"
    )


class Router:
    """Maps exposed names and URIs to namespaces, and names back to what the backend calls them."""

    def __init__(self, namespaces: dict[str, Namespace], separator: str):
        self.namespaces = namespaces
        self.separator = separator
        self.unprefixed = [ns for ns in namespaces.values() if not ns.prefix]
        self._names: dict[str, dict[str, str]] = {TOOL: {}, PROMPT: {}}
        self._uris: dict[str, str] = {}
        self._templates: dict[str, tuple[re.Pattern[str], str]] = {}

    @property
    def single(self) -> Namespace | None:
        """The only namespace, when there is just one (lists are then forwarded verbatim)."""
        return next(iter(self.namespaces.values())) if len(self.namespaces) == 1 else None

    def expose(self, namespace: Namespace, name: str) -> str:
        return f"{namespace.name}{self.separator}{name}" if namespace.prefix else name

    def resolve_name(self, kind: str, exposed: str) -> tuple[Namespace, str] | None:
        head, sep, rest = exposed.partition(self.separator)
        if sep and rest:
            ns = self.namespaces.get(head)
            if ns is not None and ns.prefix:
                return ns, rest
        known = self._names[kind].get(exposed)
        if known is not None:
            return self.namespaces[known], exposed
        if len(self.unprefixed) == 1:
            return self.unprefixed[0], exposed  # The backend answers for names it does not know.
        return None

    def resolve_uri(self, uri: str) -> Namespace | None:
        owner = self._uris.get(uri) or (self._templates[uri][1] if uri in self._templates else None)
        if owner is None:
            owner = next((ns for pattern, ns in self._templates.values() if pattern.match(uri)), None)
        if owner is None and len(self.namespaces) == 1:
            return self.single
        return self.namespaces.get(owner) if owner else None

    def learn(self, kind: str, namespace: Namespace, key: str) -> None:
        """Record who serves an unprefixed name or a URI; a second owner is a configuration error."""
        if kind in (TOOL, PROMPT):
            if namespace.prefix:
                return
            head, sep, _ = key.partition(self.separator)
            clash = head if sep and head in self.namespaces and self.namespaces[head].prefix else None
            table = self._names[kind]
        elif kind == RESOURCE:
            clash, table = None, self._uris
        else:
            clash = None
            owner = self._templates.setdefault(key, (template_pattern(key), namespace.name))[1]
            clash = owner if owner != namespace.name else None
            table = None
        if table is not None:
            owner = table.setdefault(key, namespace.name)
            clash = clash or (owner if owner != namespace.name else None)
        if clash is not None:
            raise GatewayError(
                ErrorCode.CONFIGURATION_ERROR,
                f"Configuration error: {kind} {key!r} is exposed by namespaces {clash!r} and {namespace.name!r}; "
                + _clash_advice(kind, namespace.name),
                data={"kind": kind, "name": key, "namespaces": sorted({clash, namespace.name})},
            )

    def forget(self, kind: str, namespace: str) -> None:
        """Drop what a namespace exposed (after its `list_changed`)."""
        if kind == TEMPLATE:
            self._templates = {k: v for k, v in self._templates.items() if v[1] != namespace}
            return
        table = self._uris if kind == RESOURCE else self._names[kind]
        for key in [k for k, owner in table.items() if owner == namespace]:
            del table[key]
