"""The part of Elasticsearch's query DSL the log queries of docs/operations.md use, run over log
documents as Elasticsearch's dynamic mapping indexes them (no Elasticsearch runs here).

Dynamic mapping turns a JSON string into a `text` field (the standard analyzer: lower-cased
words; hyphens and spaces split, `_` and `.` between letters do not) with a `keyword`
sub-field, `<field>.keyword`, holding the exact string (ignored above 256 characters); numbers
become numeric fields. Against that:

- `term`: the exact value among the field's indexed terms: the analyzed words of a `text` field
  (so `"mcp-gateway"` never matches one), the whole string of a `keyword`, the number itself;
- `match`: the query text analyzed, and any of its words (the default operator, `or`) among the
  field's words;
- `range`: `gt`, `gte`, `lt`, `lte` on numbers;
- `bool`: `must` and `filter` (all), `should` (at least one, when there is no must/filter or
  `minimum_should_match` says so), `must_not` (none);
- aggregations: `terms` on a keyword field (buckets by document count, then key).

Anything else raises `Unsupported`, so a query this cannot judge fails its test loudly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KEYWORD_IGNORE_ABOVE = 256
_WORD = re.compile(r"\w+(?:[.'’]\w+)*")
_MISSING = object()


class Unsupported(ValueError):
    """A query or aggregation outside the subset this module evaluates."""


def analyze(text: str) -> list[str]:
    """The standard analyzer, for the ASCII text of log lines."""
    return [word.lower() for word in _WORD.findall(text)]


def _lookup(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _values(doc: dict[str, Any], field_name: str) -> tuple[str, list[Any]]:
    """(`text` | `keyword` | `number` | `boolean`, the indexed values) of a field in a document."""
    keyword = field_name.endswith(".keyword")
    value = _lookup(doc, field_name.removesuffix(".keyword") if keyword else field_name)
    values = value if isinstance(value, list) else [] if value is _MISSING or value is None else [value]
    if keyword:
        return "keyword", [v for v in values if isinstance(v, str) and len(v) <= KEYWORD_IGNORE_ABOVE]
    if all(isinstance(v, bool) for v in values) and values:
        return "boolean", values
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and values:
        return "number", values
    return "text", [word for v in values if isinstance(v, str) for word in analyze(v)]


def _single(clause: dict[str, Any], kind: str) -> tuple[str, Any]:
    if len(clause) != 1:
        raise Unsupported(f"{kind} takes exactly one field: {clause}")
    ((name, spec),) = clause.items()
    return name, spec


def _term(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    name, spec = _single(clause, "term")
    wanted = spec["value"] if isinstance(spec, dict) else spec
    kind, values = _values(doc, name)
    if kind == "number":
        return any(v == wanted for v in values)
    return any(v == wanted for v in values if isinstance(v, type(wanted)))


def _match(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    name, spec = _single(clause, "match")
    if isinstance(spec, dict):
        if set(spec) - {"query", "operator"}:
            raise Unsupported(f"match options {sorted(set(spec) - {'query', 'operator'})}")
        query, operator = spec["query"], spec.get("operator", "or").lower()
    else:
        query, operator = spec, "or"
    kind, values = _values(doc, name)
    wanted = analyze(str(query)) if kind == "text" else [query]
    found = [w in values for w in wanted]
    return bool(found) and (all(found) if operator == "and" else any(found))


def _range(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    name, bounds = _single(clause, "range")
    checks = {"gt": lambda v, b: v > b, "gte": lambda v, b: v >= b, "lt": lambda v, b: v < b, "lte": lambda v, b: v <= b}
    if set(bounds) - set(checks):
        raise Unsupported(f"range options {sorted(set(bounds) - set(checks))}")
    kind, values = _values(doc, name)
    if kind != "number":
        return False
    return any(all(checks[op](v, bound) for op, bound in bounds.items()) for v in values)


def _bool(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    known = {"must", "filter", "should", "must_not", "minimum_should_match"}
    if set(clause) - known:
        raise Unsupported(f"bool options {sorted(set(clause) - known)}")

    def clauses(key: str) -> list[dict[str, Any]]:
        value = clause.get(key, [])
        return value if isinstance(value, list) else [value]

    required = clauses("must") + clauses("filter")
    should = clauses("should")
    minimum = clause.get("minimum_should_match", 0 if required else 1 if should else 0)
    return (
        all(matches(doc, q) for q in required)
        and sum(matches(doc, q) for q in should) >= minimum
        and not any(matches(doc, q) for q in clauses("must_not"))
    )


_QUERIES = {"term": _term, "match": _match, "range": _range, "bool": _bool, "match_all": lambda doc, clause: True}


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """Whether `doc` matches `query` (the value of a search body's `query`)."""
    ((kind, clause),) = query.items()
    if kind not in _QUERIES:
        raise Unsupported(f"query type {kind!r}")
    return _QUERIES[kind](doc, clause)


@dataclass
class SearchResult:
    hits: list[dict[str, Any]]
    #: aggregation name -> [(key, doc_count), ...] for `terms` aggregations.
    aggregations: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)


def search(docs: Iterable[dict[str, Any]], body: dict[str, Any]) -> SearchResult:
    """A `_search` request body (`query`, `aggs`/`aggregations`, `size`) over `docs`."""
    if set(body) - {"query", "aggs", "aggregations", "size"}:
        raise Unsupported(f"search body keys {sorted(set(body) - {'query', 'aggs', 'aggregations', 'size'})}")
    hits = [doc for doc in docs if matches(doc, body.get("query", {"match_all": {}}))]
    result = SearchResult(hits[: body.get("size", 10_000)])
    for name, aggregation in (body.get("aggs") or body.get("aggregations") or {}).items():
        ((kind, spec),) = aggregation.items()
        if kind != "terms" or set(spec) - {"field", "size"}:
            raise Unsupported(f"aggregation {name}: {aggregation}")
        counts: Counter[Any] = Counter()
        for doc in hits:
            kind_of, values = _values(doc, spec["field"])
            if kind_of == "text" and values:
                raise Unsupported(f"terms aggregation on text field {spec['field']!r} (Elasticsearch refuses it; use .keyword)")
            counts.update(set(values))
        result.aggregations[name] = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: spec.get("size", 10)]
    return result
